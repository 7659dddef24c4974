"""The decoder graph, written node by node from the LLM's weights (no tracing).

Contract (bundle format 2):
- ``inputs_embeds`` [1, S, H] float32: the S new positions;
- ``past_key.i`` / ``past_value.i`` [1, kv_heads, capacity, head_dim]: one preallocated buffer per
  layer and per K/V, heads first;
- ``seqlens_k`` [1] int32 (= total length − 1) and ``total_sequence_length`` [] int32;
- → ``logits`` [1, vocab] for the last position only, and ``present_key.i`` / ``present_value.i``:
  the same buffers, which the runtime binds to the same memory as ``past``.

Why this shape: onnxruntime's ``GroupQueryAttention`` (com.microsoft) reads the cache where it
lies and writes the new rows into it when past and present share one buffer, applies the rotary
embedding itself and needs no mask tensor. A traced transformers graph instead transposes and
concatenates the whole cache on every token, a cost that grows with the context (measured 40 → 27
tok/s between 140 and 390 positions, Qwen3-0.6B INT4). Writing the graph directly also packs
q/k/v and gate/up into one MatMul each (one weight read per step instead of three or two) and emits
the norms as onnxruntime's fused (Skip)SimplifiedLayerNormalization.

The LM head stays a ``Gemm(transB=1)`` over the [vocab, H] weight, the same layout as the token
embedding table, so the runtime reads embedding rows straight out of the decoder's weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from transformers import PreTrainedModel

from tinyaudio.errors import TinyAudioError
from tinyaudio.onnx_files import ExternalWeights

OPSET = 21
MS_DOMAIN = "com.microsoft"
ROTARY_POSITIONS = 8192  # the rotary tables' length: a 30 s window needs ~400 prompt positions


class _Graph:
    """Nodes and their weights; each weight goes straight to the data file as it is added."""

    def __init__(self, weights: ExternalWeights, modules: dict[int, str]) -> None:
        self.weights = weights
        self.modules = modules  # id(module) → its name in the model, for weight names
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.weights.add(name, array))
        return name

    def node(self, op: str, inputs: list[str], outputs: int | list[str] = 1, name: str = "",
             domain: str = "", **attrs) -> list[str]:  # fmt: skip
        """Add a node; ``outputs`` is a count (fresh names) or the names themselves."""
        self._count += 1
        name = name or f"{op}_{self._count}"
        if isinstance(outputs, int):
            outputs = [f"{name}/out{i}" for i in range(outputs)]
        node = helper.make_node(op, inputs, outputs, name, domain=domain or None, **attrs)
        self.nodes.append(node)
        return outputs

    def linear(self, x: str, modules: list[torch.nn.Linear], name: str) -> str:
        """x @ [W₁ᵀ | W₂ᵀ | …] (+ biases): one MatMul for projections that read the same input."""
        matrix = torch.cat([m.weight.detach().float() for m in modules]).T.contiguous().numpy()
        (out,) = self.node("MatMul", [x, self.weight(name + ".weight", matrix)], name=name)
        if any(m.bias is not None for m in modules):
            bias = torch.cat([_bias(m) for m in modules]).numpy()
            (out,) = self.node("Add", [out, self.weight(name + ".bias", bias)])
        return out

    def rms_norm(self, x: str, norm: torch.nn.Module, eps: float) -> str:
        scale = self.weight(self.modules[id(norm)], _array(norm.weight))
        return self.node("SimplifiedLayerNormalization", [x, scale], axis=-1, epsilon=eps)[0]

    def skip_rms_norm(self, x: str, skip: str, norm: torch.nn.Module, eps: float) -> list[str]:
        """(norm(x + skip), x + skip) in one fused node."""
        scale = self.weight(self.modules[id(norm)], _array(norm.weight))
        name = f"{self.modules[id(norm)]}/skip"
        outputs = [f"{name}/normed", "", "", f"{name}/sum"]
        self.node("SkipSimplifiedLayerNormalization", [x, skip, scale], outputs, name,
                  MS_DOMAIN, epsilon=eps)  # fmt: skip
        return [outputs[0], outputs[3]]

    def constant(self, name: str, values: list[int]) -> str:
        self.initializers.append(onnx.numpy_helper.from_array(np.array(values, np.int64), name))
        return name


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().contiguous().numpy()


def _bias(module: torch.nn.Linear) -> torch.Tensor:
    if module.bias is None:
        return torch.zeros(module.out_features)
    return module.bias.detach().float()


def rotary_tables(language_model: PreTrainedModel, positions: int) -> tuple[np.ndarray, ...]:
    """cos/sin [positions, head_dim/2] exactly as the model's rotary module computes them
    (its inv_freq carries any rope scaling; attention_scaling multiplies both)."""
    rotary = language_model.model.rotary_emb
    inv_freq = rotary.inv_freq.float()
    freqs = torch.arange(positions, dtype=torch.float32)[:, None] * inv_freq[None]
    scaling = float(getattr(rotary, "attention_scaling", 1.0))
    return _array(freqs.cos() * scaling), _array(freqs.sin() * scaling)


def check_supported(config) -> None:
    """The layer shapes this builder writes; anything else is refused, never approximated."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    problems = []
    if config.hidden_act != "silu":
        problems.append(f"activation {config.hidden_act} (only silu)")
    if head_dim % 16:
        problems.append(f"head_dim {head_dim} (GroupQueryAttention needs a multiple of 16)")
    if getattr(config, "use_sliding_window", False):
        problems.append("sliding-window attention")
    if problems:
        raise TinyAudioError(f"cannot export this decoder LLM: {'; '.join(problems)}")


def export_decoder(language_model: PreTrainedModel, path: Path) -> int:
    """Write the decoder graph to ``path`` (+ ``.data``); returns the rotary tables' length."""
    config = language_model.config
    check_supported(config)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    eps = config.rms_norm_eps
    positions = min(config.max_position_embeddings, ROTARY_POSITIONS)
    model = language_model.model
    with ExternalWeights(path) as weights:
        graph = _Graph(weights, {id(m): n for n, m in language_model.named_modules()})
        cos, sin = rotary_tables(language_model, positions)
        rotary = [graph.weight("rotary.cos", cos), graph.weight("rotary.sin", sin)]
        split_qkv = graph.constant("split.qkv", [heads * head_dim, *[kv_heads * head_dim] * 2])
        split_mlp = graph.constant("split.mlp", [config.intermediate_size] * 2)
        by_head = graph.constant("shape.by_head", [0, 0, -1, head_dim])
        flat = graph.constant("shape.flat", [0, 0, -1])
        layers = model.layers
        hidden = "inputs_embeds"
        normed = graph.rms_norm(hidden, layers[0].input_layernorm, eps)
        for index, layer in enumerate(layers):
            attention, mlp = layer.self_attn, layer.mlp
            prefix = f"model.layers.{index}"
            qkv = graph.linear(normed, [attention.q_proj, attention.k_proj, attention.v_proj],
                               f"{prefix}.self_attn.qkv_proj")  # fmt: skip
            query, key, value = graph.node("Split", [qkv, split_qkv], 3, axis=-1)
            if hasattr(attention, "q_norm"):  # Qwen3: RMSNorm over each head before the rotary
                query, key = (
                    graph.node("Reshape", [graph.rms_norm(
                        graph.node("Reshape", [x, by_head])[0], norm, eps), flat])[0]
                    for x, norm in ((query, attention.q_norm), (key, attention.k_norm))
                )  # fmt: skip
            past = [f"past_key.{index}", f"past_value.{index}"]
            present = [f"present_key.{index}", f"present_value.{index}"]
            context = graph.node(
                "GroupQueryAttention",
                [query, key, value, *past, "seqlens_k", "total_sequence_length", *rotary],
                [f"{prefix}.self_attn/context", *present],
                f"{prefix}.self_attn.attention",
                MS_DOMAIN,
                num_heads=heads,
                kv_num_heads=kv_heads,
                scale=float(attention.scaling),
                do_rotary=1,
                rotary_interleaved=0,
            )[0]
            attended = graph.linear(context, [attention.o_proj], f"{prefix}.self_attn.o_proj")
            normed, hidden = graph.skip_rms_norm(attended, hidden, layer.post_attention_layernorm,
                                                 eps)  # fmt: skip
            gate_up = graph.linear(normed, [mlp.gate_proj, mlp.up_proj],
                                   f"{prefix}.mlp.gate_up_proj")  # fmt: skip
            gate, up = graph.node("Split", [gate_up, split_mlp], 2, axis=-1)
            (silu,) = graph.node("Mul", [gate, graph.node("Sigmoid", [gate])[0]])
            (product,) = graph.node("Mul", [silu, up])
            down = graph.linear(product, [mlp.down_proj], f"{prefix}.mlp.down_proj")
            following = layers[index + 1].input_layernorm if index + 1 < len(layers) else model.norm
            normed, hidden = graph.skip_rms_norm(down, hidden, following, eps)
        last = graph.constant("position.last", [-1])
        (final,) = graph.node("Gather", [normed, last], axis=1)  # [1, 1, H]
        (final,) = graph.node("Reshape", [final, graph.constant("shape.row", [1, -1])])
        head = graph.weight("lm_head.weight", _array(language_model.lm_head.weight))
        graph.node("Gemm", [final, head], ["logits"], "lm_head", transB=1)
        vocab = language_model.lm_head.weight.shape[0]
        cache = [1, kv_heads, "capacity", head_dim]
        float_input = lambda name, shape: helper.make_tensor_value_info(  # noqa: E731
            name, TensorProto.FLOAT, shape
        )
        inputs = [float_input("inputs_embeds", [1, "sequence", config.hidden_size])]
        outputs = [float_input("logits", [1, vocab])]
        for index in range(len(layers)):
            for kind in ("key", "value"):
                inputs.append(float_input(f"past_{kind}.{index}", cache))
                outputs.append(float_input(f"present_{kind}.{index}", cache))
        inputs += [
            helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
            helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        ]
        body = helper.make_graph(graph.nodes, "decoder", inputs, outputs, graph.initializers)
        proto = helper.make_model(
            body,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
            producer_name="tinyaudio",
        )
        weights.save(proto)
    return positions
