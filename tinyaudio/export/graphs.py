"""The three FP32 graphs of a bundle, traced with ``torch.onnx.export(dynamo=True)``.

- encoder: ``input_features`` [1, n_mels, frames] → ``encoder_states`` [1, frames', D], any length
  (the exact mode feeds 3000 frames, the fast mode only the real ones);
- projector: ``encoder_states`` → ``audio_embeds`` [1, rows, H], any length;
- decoder: ``inputs_embeds`` [1, S, H] + ``past_key.i``/``past_value.i`` [1, P, kv_heads, head_dim]
  → ``logits`` [1, vocab] for the last position only, and ``new_key.i``/``new_value.i``
  [1, S, kv_heads, head_dim]: the cache rows of the S new positions, not the whole cache.

Why KV *deltas* with the time axis first: the runtime keeps one preallocated [1, max, kv, hd]
buffer per layer. ``past`` is the prefix ``buffer[:, :P]`` and the outputs are bound to
``buffer[:, P:P+S]``; both slices are contiguous, so IO binding hands onnxruntime pointers into
the buffer and nothing is copied or allocated per step. Standard past/present graphs return the
whole cache every step (an O(P) copy per layer per token), and the alternative that shares one
buffer (GroupQueryAttention's past_present_share_buffer) needs contrib ops that a plain torch
export does not produce.

The LM head stays a ``Gemm(transB=1)`` over the [vocab, H] weight, the same layout as the token
embedding table, so the runtime reads embedding rows straight out of the decoder's weights instead
of shipping a second copy.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import AttentionInterface, DynamicCache, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from tinyaudio import onnx_files
from tinyaudio.export.encoder import AudioEncoder
from tinyaudio.export.projectors import Projector

OPSET = 21
MAX_FRAMES = 3000  # 30 s of mel frames: the encoder's window
MAX_POSITIONS = 32768


class EncoderGraph(nn.Module):
    def __init__(self, encoder: AudioEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.module = encoder.module  # registers the weights

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features)


class DecoderGraph(nn.Module):
    """The LLM with a KV cache in, KV deltas out, and last-position logits."""

    def __init__(self, language_model: PreTrainedModel) -> None:
        super().__init__()
        self.language_model = language_model
        self.num_layers = language_model.config.num_hidden_layers

    def forward(self, inputs_embeds: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cached = past[0].shape[1]
        new = inputs_embeds.shape[1]
        cache = DynamicCache(config=self.language_model.config)
        for layer in range(self.num_layers):
            keys, values = past[2 * layer], past[2 * layer + 1]
            cache.update(keys.transpose(1, 2), values.transpose(1, 2), layer)
        positions = torch.arange(cached, cached + new).unsqueeze(0)
        hidden = self.language_model.model(
            inputs_embeds=inputs_embeds, past_key_values=cache, position_ids=positions,
            use_cache=True,
        ).last_hidden_state  # fmt: skip
        logits = self.language_model.lm_head(hidden[:, -1])
        deltas: list[torch.Tensor] = []
        for layer in cache.layers:
            deltas += [layer.keys[:, :, cached:].transpose(1, 2)]
            deltas += [layer.values[:, :, cached:].transpose(1, 2)]
        return (logits, *deltas)


def grouped_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Eager attention without ``repeat_kv``: the query heads that share a KV head are stacked
    along the time axis, so each KV head's cache is read where it lies. transformers' eager path
    expands the whole cache to every query head first: an ``Expand`` copy per layer per token
    that cost ~16 % of a Qwen3-0.6B decode step (measured, 140 cached positions, INT4)."""
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    stacked = query.reshape(batch, kv_heads, groups * length, dim)
    scores = torch.matmul(stacked, key.transpose(2, 3)) * scaling
    if attention_mask is not None:  # [batch, 1, length, total]: the same for every group
        scores = scores.reshape(batch, kv_heads, groups, length, -1) + attention_mask[:, :, None]
        scores = scores.reshape(batch, kv_heads, groups * length, -1)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(probs, value).reshape(batch, heads, length, dim)
    return output.transpose(1, 2).contiguous(), None


GROUPED = "tinyaudio_grouped"
AttentionInterface.register(GROUPED, grouped_attention)
AttentionMaskInterface.register(GROUPED, eager_mask)


def _divided_rms_norm(self: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """RMSNorm as x / sqrt(mean(x²) + eps) · w: the form onnxruntime fuses into one
    SimplifiedLayerNormalization (``x · rsqrt(...)`` exports as Sqrt, Reciprocal, Mul: unfused)."""
    variance = hidden.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden / torch.sqrt(variance + self.variance_epsilon))


@contextlib.contextmanager
def fusable_norms(model: nn.Module) -> Iterator[None]:
    """Trace the model's RMSNorms (Qwen3's 113 of them) in the form onnxruntime fuses."""
    norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
    for norm in norms:
        norm.forward = types.MethodType(_divided_rms_norm, norm)
    try:
        yield
    finally:
        for norm in norms:
            del norm.forward


def kv_names(num_layers: int, prefix: str) -> list[str]:
    return [f"{prefix}_{kind}.{i}" for i in range(num_layers) for kind in ("key", "value")]


def export_encoder(encoder: AudioEncoder, n_mels: int, path: Path) -> None:
    frames = torch.export.Dim("frames", min=8, max=MAX_FRAMES)
    example = torch.randn(1, n_mels, 200)
    _export(EncoderGraph(encoder), (example,), path, ["input_features"], ["encoder_states"],
            ({2: frames},))  # fmt: skip


def export_projector(projector: Projector, encoder_dim: int, path: Path) -> None:
    frames = torch.export.Dim("encoder_frames", min=4, max=MAX_FRAMES)
    example = torch.randn(1, 100, encoder_dim)
    _export(projector, (example,), path, ["encoder_states"], ["audio_embeds"], ({1: frames},))


def export_decoder(language_model: PreTrainedModel, path: Path) -> None:
    config = language_model.config
    graph = DecoderGraph(language_model)
    layers, kv_heads = config.num_hidden_layers, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    new = torch.export.Dim("sequence", min=1, max=MAX_POSITIONS)
    cached = torch.export.Dim("past_sequence", min=0, max=MAX_POSITIONS)
    embeds = torch.randn(1, 5, config.hidden_size)
    past = tuple(torch.randn(1, 3, kv_heads, head_dim) for _ in range(2 * layers))
    traced_with = config._attn_implementation  # parity then checks the model as it came
    config._attn_implementation = GROUPED  # plain MatMul/Softmax: quantizable
    try:
        with fusable_norms(language_model):
            _export(
                graph,
                (embeds, *past),
                path,
                ["inputs_embeds", *kv_names(layers, "past")],
                ["logits", *kv_names(layers, "new")],
                ({1: new}, tuple({1: cached} for _ in past)),
                # the exporter would name these dims Max(0, past + new - Min(...))
                output_dims={name: {1: "sequence"} for name in kv_names(layers, "new")},
            )
    finally:
        config._attn_implementation = traced_with


def _export(module, args, path: Path, inputs, outputs, dynamic_shapes, output_dims=None) -> None:
    """Trace, optimise and save one graph; torch.onnx's chatter is kept off the terminal."""
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            verbose=False,
        )
    model = _name_weight_nodes(program.model_proto)
    for output in model.graph.output:
        for axis, name in (output_dims or {}).get(output.name, {}).items():
            output.type.tensor_type.shape.dim[axis].dim_param = name
    onnx_files.save_model(model, path)


def _name_weight_nodes(model):
    """Name each weight MatMul/Gemm after its module (``...layers.3.mlp.down_proj``) so that
    quantization recipes can pick layers by name; drop the exporter's bulky debug metadata."""
    weights = {tensor.name for tensor in model.graph.initializer}
    for node in model.graph.node:
        props = {prop.key: prop.value for prop in node.metadata_props}
        scopes = props.get("pkg.torch.onnx.name_scopes")
        if node.op_type in ("MatMul", "Gemm") and scopes and node.input[1] in weights:
            node.name = ast.literal_eval(scopes)[-2]  # [..., module path, fx op name]
        del node.metadata_props[:]
    return model
