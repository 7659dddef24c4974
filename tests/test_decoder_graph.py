"""The decoder graph written from an LLM's weights, for each supported family: its logits equal
transformers' own forward, the shared-buffer loop equals a plain past → present loop, and what the
builder cannot write is refused in one line."""

from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.decoder_graph import export_decoder, head_dim
from tinyaudio.onnx_files import ALIGNMENT, INLINE_BYTES
from tinyaudio.runtime.alignment import AttentionRecorder
from tinyaudio.runtime.decoder import Decoder

SIZES = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=5000, max_position_embeddings=256,
             tie_word_embeddings=True)  # fmt: skip
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}  # fmt: skip
FAMILIES = {
    "qwen3": lambda: Qwen3Config(**SIZES, head_dim=16),
    "qwen2 (q/k/v biases)": lambda: Qwen2Config(**SIZES),
    "llama (biases, llama3 rope)": lambda: LlamaConfig(
        **SIZES, head_dim=32, attention_bias=True, mlp_bias=True, rope_parameters=LLAMA3_ROPE
    ),
}


def random_model(config) -> torch.nn.Module:
    """Every weight random, biases and norm scales included (they start at 0 and 1)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                tensor.add_(0.2 * torch.randn_like(tensor))
    return model


def export(model, directory) -> Decoder:
    path = directory / "decoder.onnx"
    positions = export_decoder(model, path)
    config = model.config
    dims = {"num_layers": config.num_hidden_layers, "num_kv_heads": config.num_key_value_heads,
            "head_dim": head_dim(config), "vocab_size": config.vocab_size,
            "max_positions": positions}  # fmt: skip
    return Decoder(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), dims)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_match_transformers(family, tmp_path):
    model = random_model(FAMILIES[family]())
    decoder = export(model, tmp_path)
    embeds = torch.randn(1, 9, model.config.hidden_size)
    cache = decoder.new_cache(14)
    logits = decoder.forward(embeds.numpy(), cache)
    for step in range(5):
        with torch.no_grad():
            expected = model(inputs_embeds=embeds).logits[:, -1].numpy()
        np.testing.assert_allclose(logits, expected, atol=2e-5, rtol=0, err_msg=f"step {step}")
        row = torch.randn(1, 1, model.config.hidden_size)
        embeds = torch.cat([embeds, row], dim=1)
        logits = decoder.forward(row.numpy(), cache)


def test_shared_buffer_equals_a_plain_past_present_loop(tmp_path):
    """The runtime's in-place loop against session.run feeding each present back as past."""
    model = random_model(FAMILIES["qwen3"]())
    decoder = export(model, tmp_path)
    rng = np.random.default_rng(1)
    chunks = [rng.standard_normal((1, n, 64)).astype(np.float32) for n in (6, 1, 1, 3, 1)]
    cache = decoder.new_cache(sum(c.shape[1] for c in chunks))
    past = {name: np.zeros((1, 2, 0, 16), np.float32) for name in decoder.past_names}
    for chunk in chunks:
        shared = decoder.forward(chunk, cache).copy()
        total = cache.length
        outputs = decoder.session.run(None, {
            "inputs_embeds": chunk, **past, "seqlens_k": np.array([total - 1], np.int32),
            "total_sequence_length": np.array(total, np.int32)})  # fmt: skip
        np.testing.assert_allclose(shared, outputs[0], atol=1e-6)
        past = dict(zip(decoder.past_names, outputs[1 : 1 + len(past)], strict=True))
    for buffer, name in zip(cache.buffers, decoder.past_names, strict=True):
        np.testing.assert_allclose(buffer, past[name], atol=1e-6)


def test_weights_are_streamed_inline_or_aligned(tmp_path):
    export(random_model(FAMILIES["qwen3"]()), tmp_path)
    proto = onnx.load(str(tmp_path / "decoder.onnx"), load_external_data=False)
    external = {t.name: {e.key: int(e.value) for e in t.external_data if e.key != "location"}
                for t in proto.graph.initializer if t.external_data}  # fmt: skip
    assert "lm_head.weight" in external and "model.layers.0.self_attn.qkv_proj.weight" in external
    for tensor in proto.graph.initializer:
        size = int(np.prod(tensor.dims)) * 4 if tensor.data_type == 1 else 0
        if tensor.name in external:
            assert external[tensor.name]["length"] == size >= INLINE_BYTES
            if size >= 1 << 20:  # 5000 × 64 floats: the LM head
                assert external[tensor.name]["offset"] % ALIGNMENT == 0
        elif tensor.data_type == 1:
            assert size < INLINE_BYTES, tensor.name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"head_dim": 8}, "head_dim 8"),
        ({"hidden_act": "gelu"}, "activation gelu"),
        ({"tie_word_embeddings": False}, "not tied"),
        ({"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}},
         "'dynamic' rotary"),
    ],
)  # fmt: skip
def test_what_cannot_be_written_is_refused(change, message, tmp_path):
    model = random_model(Qwen3Config(**{**SIZES, "head_dim": 16, **change}))
    with pytest.raises(TinyAudioError, match=message):
        export_decoder(model, tmp_path / "decoder.onnx")
    assert not (tmp_path / "decoder.onnx").exists()


def test_device_resident_cache_gives_the_same_tokens(tmp_path):
    """The GPU path (cache, step input and logits in OrtValues, prefix uploaded once) run with
    CPU OrtValues: the same logits and greedy tokens as the numpy buffers bound in place."""
    decoder = export(random_model(FAMILIES["qwen3"]()), tmp_path)
    dims = {"num_layers": decoder.layers, "num_kv_heads": decoder.kv_heads,
            "head_dim": decoder.head_dim, "vocab_size": decoder.vocab_size,
            "max_positions": decoder.max_positions}  # fmt: skip
    on_device = Decoder(decoder.session, dims, device="cpu")
    rng = np.random.default_rng(2)
    table = rng.standard_normal((decoder.vocab_size, 64)).astype(np.float32)
    prefix, prompt = table[[1, 2, 3]][None], rng.standard_normal((1, 7, 64)).astype(np.float32)

    def greedy(runner: Decoder) -> tuple[list[int], list[np.ndarray]]:
        first = runner.new_cache(3)
        runner.forward(prefix, first)
        cache = runner.new_cache(3 + 7 + 12)
        cache.append(runner.host_states(first))
        tokens, logits = [], []
        for token, step in runner.generate(prompt, lambda ids: table[ids], cache):
            tokens.append(token)
            logits.append(step.copy())
            if len(tokens) == 12:
                return tokens, logits

    (tokens, logits), (device_tokens, device_logits) = greedy(decoder), greedy(on_device)
    assert device_tokens == tokens
    np.testing.assert_allclose(np.concatenate(device_logits), np.concatenate(logits), atol=1e-6)
    assert on_device.new_cache(4).buffers[0].device_name() == "cpu"  # OrtValues, not numpy


@pytest.mark.parametrize("family", ["qwen3", "llama (biases, llama3 rope)"])
def test_alignment_queries_give_transformers_attention(family, tmp_path):
    """The queries the graph exposes, scored against the cached keys, are each step's attention
    weights as transformers computes them, for every layer and head (word timestamps rely on it)."""
    model = random_model(FAMILIES[family]())
    decoder = export(model, tmp_path)
    config = model.config
    heads = [(layer, head) for layer in range(config.num_hidden_layers)
             for head in range(config.num_attention_heads)]  # fmt: skip
    recorder = AttentionRecorder(heads, head_dim(config) ** -0.5)
    embeds = torch.randn(1, 9, config.hidden_size)
    cache = decoder.new_cache(14)
    recorder.start(partial(decoder.keys, cache), 2, 5)  # "audio" rows at positions 2..6
    decoder.forward(embeds.numpy(), cache)
    recorder.step(decoder.queries, cache.length - 1)
    expected = []
    for _ in range(4):
        with torch.no_grad():
            attentions = model(inputs_embeds=embeds, output_attentions=True).attentions
        expected.append([attentions[layer][0, head, -1, 2:7].numpy() for layer, head in heads])
        row = torch.randn(1, 1, config.hidden_size)
        embeds = torch.cat([embeds, row], dim=1)
        decoder.forward(row.numpy(), cache)
        recorder.step(decoder.queries, cache.length - 1)
    got = recorder.attention()[:, :4]  # [heads, steps, rows]
    np.testing.assert_allclose(got, np.array(expected).transpose(1, 0, 2), atol=2e-6, rtol=0)
