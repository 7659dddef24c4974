"""The decoder graph, written node by node from the LLM's weights (no tracing).

Contract (bundle format 2):
- ``inputs_embeds`` [1, S, H] float32: the S new positions;
- ``past_key.i`` / ``past_value.i`` [1, kv_heads, capacity, head_dim]: one preallocated buffer per
  layer and per K/V, heads first;
- ``seqlens_k`` [1] int32 (= total length − 1) and ``total_sequence_length`` [] int32;
- → ``logits`` [1, vocab] for the last position only, and ``present_key.i`` / ``present_value.i``:
  the same buffers, which the runtime binds to the same memory as ``past``;
- → ``alignment_query.i`` [1, heads, head_dim]: layer i's query of the last position, rotary
  applied, for the layers whose attention over the audio rows times words (runtime/alignment.py).
  Export writes one per layer, picks the heads, then keeps only their layers' (``keep_queries``):
  a few hundred floats per token. With the cached keys they give that token's attention exactly,
  so word timestamps need no second graph and no second pass.

Why this shape: onnxruntime's ``GroupQueryAttention`` (com.microsoft) reads the cache where it
lies and writes the new rows into it when past and present share one buffer, applies the rotary
embedding itself and needs no mask tensor. A traced transformers graph instead transposes and
concatenates the whole cache on every token (format 1: INT4 decode 0.71× onnxruntime-genai's at
140 positions, 0.58× at 390; this graph: 1.11× and 0.95×). Writing the graph directly also packs
q/k/v and gate/up into one MatMul each (one weight read per step instead of three or two) and emits
the norms as onnxruntime's fused (Skip)SimplifiedLayerNormalization.

The LM head stays a ``Gemm(transB=1)`` over the [vocab, H] weight, the same layout as the token
embedding table, so the runtime reads embedding rows straight out of the decoder's weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from onnx import TensorProto, helper
from transformers import PretrainedConfig, PreTrainedModel

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.graph_builder import (
    MS_DOMAIN,
    GraphBuilder,
    as_array,
    float_input,
    rotary_tables,
)
from tinyaudio.onnx_files import ExternalWeights

ROTARY_POSITIONS = 8192  # the rotary tables' length: a 30 s window needs ~400 prompt positions
VARIABLE_ROPE = ("dynamic", "longrope")  # their frequencies change with the length: no fixed table


def _rms_norm(graph: GraphBuilder, x: str, norm: torch.nn.Module, eps: float) -> str:
    scale = graph.parameter(norm)
    return graph.node("SimplifiedLayerNormalization", [x, scale], axis=-1, epsilon=eps)[0]


def _head_norm(graph: GraphBuilder, x: str, norm: torch.nn.Module, eps: float, size: int) -> str:
    """Qwen3's RMSNorm over each head of [1, S, heads·size]."""
    by_head = graph.node("Reshape", [x, graph.constant([0, 0, -1, size])])
    normed = _rms_norm(graph, by_head[0], norm, eps)
    return graph.node("Reshape", [normed, graph.constant([0, 0, -1])])[0]


def head_dim(config: PretrainedConfig) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def check_supported(config: PretrainedConfig) -> None:
    """The decoders this builder writes; anything else is refused (at load, before minutes of
    export), never approximated."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    problems = []
    if config.hidden_act != "silu":
        problems.append(f"activation {config.hidden_act} (only silu)")
    if head_dim(config) % 16:
        problems.append(f"head_dim {head_dim(config)} (GroupQueryAttention needs a multiple of 16)")
    if getattr(config, "use_sliding_window", False) or any(
        kind != "full_attention" for kind in getattr(config, "layer_types", None) or []
    ):
        problems.append("sliding-window attention")
    if rope_type in VARIABLE_ROPE:
        problems.append(f"'{rope_type}' rotary scaling")
    if not getattr(config, "tie_word_embeddings", False):
        problems.append("an LM head not tied to the input embeddings (the runtime reads token "
                        "embeddings from the LM head)")  # fmt: skip
    if problems:
        raise TinyAudioError(f"cannot export this decoder LLM: {'; '.join(problems)}")


def _alignment_query(graph: GraphBuilder, query: str, index: int, heads: int, dim: int,
                     rotary: list[str], half: int) -> None:  # fmt: skip
    """``alignment_query.{index}``: the last position's query as GroupQueryAttention rotates it
    (non-interleaved halves, at position ``seqlens_k``), so that q·k over the cache is the op's own
    attention score."""
    (last,) = graph.node("Gather", [query, graph.constant([-1])], axis=1)
    (last,) = graph.node("Reshape", [last, graph.constant([1, heads, dim])])
    cos, sin = (graph.node("Gather", [table, "seqlens_k"], axis=0)[0] for table in rotary)
    parts = [half, half] + ([dim - 2 * half] if dim > 2 * half else [])
    pieces = graph.node("Split", [last, graph.constant(parts)], len(parts), axis=-1)
    first, second = pieces[:2]

    def combine(op: str, a: str, b: str, c: str, d: str) -> str:  # a·c op b·d
        return graph.node(op, [graph.node("Mul", [a, c])[0], graph.node("Mul", [b, d])[0]])[0]

    rotated = [combine("Sub", first, second, cos, sin), combine("Add", second, first, cos, sin)]
    graph.node("Concat", rotated + pieces[2:], [f"alignment_query.{index}"], axis=-1)


def _layer(graph: GraphBuilder, layer: torch.nn.Module, index: int, inputs: tuple[str, str],
           following: torch.nn.Module, rotary: list[str],
           half: int) -> tuple[str, str]:  # fmt: skip
    """One decoder layer: (its input normed, the residual stream) → the same for the next."""
    config = layer.self_attn.config
    attention, mlp, eps, dim = layer.self_attn, layer.mlp, config.rms_norm_eps, head_dim(config)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    normed, hidden = inputs
    prefix = f"model.layers.{index}"
    qkv = graph.linear(normed, [attention.q_proj, attention.k_proj, attention.v_proj],
                       f"{prefix}.self_attn.qkv_proj")  # fmt: skip
    widths = graph.constant([heads * dim, kv_heads * dim, kv_heads * dim])
    query, key, value = graph.node("Split", [qkv, widths], 3, axis=-1)
    if hasattr(attention, "q_norm"):  # Qwen3: RMSNorm over each head before the rotary
        query = _head_norm(graph, query, attention.q_norm, eps, dim)
        key = _head_norm(graph, key, attention.k_norm, eps, dim)
    _alignment_query(graph, query, index, heads, dim, rotary, half)
    context = graph.node(
        "GroupQueryAttention",
        [query, key, value, f"past_key.{index}", f"past_value.{index}", "seqlens_k",
         "total_sequence_length", *rotary],
        [f"{prefix}.self_attn/context", f"present_key.{index}", f"present_value.{index}"],
        f"{prefix}.self_attn.attention",
        MS_DOMAIN,
        num_heads=heads,
        kv_num_heads=kv_heads,
        scale=float(attention.scaling),
        do_rotary=1,
        rotary_interleaved=0,
    )[0]  # fmt: skip
    attended = graph.linear(context, [attention.o_proj], f"{prefix}.self_attn.o_proj")
    normed, hidden = graph.skip_norm(attended, hidden, layer.post_attention_layernorm, eps)
    gate_up = graph.linear(normed, [mlp.gate_proj, mlp.up_proj], f"{prefix}.mlp.gate_up_proj")
    halves = graph.constant([config.intermediate_size] * 2)
    gate, up = graph.node("Split", [gate_up, halves], 2, axis=-1)
    (silu,) = graph.node("Mul", [gate, graph.node("Sigmoid", [gate])[0]])
    (product,) = graph.node("Mul", [silu, up])
    down = graph.linear(product, [mlp.down_proj], f"{prefix}.mlp.down_proj")
    return graph.skip_norm(down, hidden, following, eps)


def export_decoder(language_model: PreTrainedModel, path: Path) -> int:
    """Write the decoder graph to ``path`` (+ ``.data``); returns the rotary tables' length."""
    config = language_model.config
    check_supported(config)
    positions = min(config.max_position_embeddings, ROTARY_POSITIONS)
    layers, final_norm = language_model.model.layers, language_model.model.norm
    with ExternalWeights(path) as weights:
        graph = GraphBuilder(weights, language_model)
        cos, sin = rotary_tables(language_model.model.rotary_emb, positions)
        rotary = [graph.weight("rotary.cos", cos), graph.weight("rotary.sin", sin)]
        state = (_rms_norm(graph, "inputs_embeds", layers[0].input_layernorm, config.rms_norm_eps),
                 "inputs_embeds")  # fmt: skip
        for index, layer in enumerate(layers):
            following = layers[index + 1].input_layernorm if index + 1 < len(layers) else final_norm
            state = _layer(graph, layer, index, state, following, rotary, cos.shape[1])
        (last,) = graph.node("Gather", [state[0], graph.constant([-1])], axis=1)
        (last,) = graph.node("Reshape", [last, graph.constant([1, -1])])
        head = graph.weight("lm_head.weight", as_array(language_model.lm_head.weight))
        graph.node("Gemm", [last, head], ["logits"], "lm_head", transB=1)
        cache = [1, config.num_key_value_heads, "capacity", head_dim(config)]
        kinds = [(index, kind) for index in range(len(layers)) for kind in ("key", "value")]
        inputs = [
            float_input("inputs_embeds", [1, "sequence", config.hidden_size]),
            *(float_input(f"past_{kind}.{index}", cache) for index, kind in kinds),
            helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
            helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        ]
        vocab = language_model.lm_head.weight.shape[0]
        outputs = [
            float_input("logits", [1, vocab]),
            *(float_input(f"present_{kind}.{index}", cache) for index, kind in kinds),
            *(float_input(f"alignment_query.{index}", [1, config.num_attention_heads,
                                                       head_dim(config)])
              for index in range(len(layers))),
        ]  # fmt: skip
        graph.save("decoder", inputs, outputs)
    return positions
