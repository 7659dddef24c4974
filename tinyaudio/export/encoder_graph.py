"""The encoder graph, written node by node from the audio encoder's weights (no tracing).

``input_features`` [1, n_mels, frames] → ``encoder_states`` [1, frames / 2, D], any length (the
exact mode feeds 3000 frames, the fast mode only the real ones).

Why not trace: torch.onnx spells attention as MatMul/Softmax/MatMul over a materialised
[heads, T, T] map per layer, GLM-ASR's rotary as Slice/Neg/Concat, and adds ~200 Casts (2612 nodes
at INT8). Written directly, each layer is LayerNormalization, one packed q/k/v MatMul,
onnxruntime's ``RotaryEmbedding`` (GLM-ASR's partial rotary) and ``MultiHeadAttention``,
``SkipLayerNormalization`` for the residual adds and ``Gelu``, the same operators onnxruntime's
transformer optimizer fuses a BERT into. Both encoder families share the layout (pre-norm layers,
q/v biased and k not); GLM-ASR rotates the first half of each head, Whisper adds a position table.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.encoder import AudioEncoder
from tinyaudio.export.graph_builder import MS_DOMAIN, GraphBuilder, float_input, rotary_tables
from tinyaudio.onnx_files import ExternalWeights


def _config(encoder: AudioEncoder):
    config = encoder.module.config
    activation = getattr(config, "hidden_act", None) or config.activation_function
    if activation != "gelu":
        raise TinyAudioError(f"cannot export this audio encoder: activation {activation} "
                             "(only gelu)")  # fmt: skip
    return config


def _conv(graph: GraphBuilder, x: str, conv: torch.nn.Conv1d) -> str:
    weight = graph.parameter(conv)
    bias = graph.parameter(conv, "bias")
    (out,) = graph.node("Conv", [x, weight, bias], kernel_shape=list(conv.kernel_size),
                        strides=list(conv.stride), pads=[conv.padding[0]] * 2)  # fmt: skip
    return graph.node("Gelu", [out], domain=MS_DOMAIN)[0]


def _parts(encoder: AudioEncoder, layer: torch.nn.Module) -> dict:
    """One layer's modules under a common name (GLM-ASR and Whisper name them differently)."""
    attention = layer.self_attn
    common = {"q": attention.q_proj, "k": attention.k_proj, "v": attention.v_proj}
    if encoder.kind == "glmasr":
        return {**common, "norm1": layer.input_layernorm, "o": attention.o_proj,
                "norm2": layer.post_attention_layernorm, "fc1": layer.mlp.fc1,
                "fc2": layer.mlp.fc2}  # fmt: skip
    return {**common, "norm1": layer.self_attn_layer_norm, "o": attention.out_proj,
            "norm2": layer.final_layer_norm, "fc1": layer.fc1, "fc2": layer.fc2}  # fmt: skip


def _layer(graph: GraphBuilder, parts: dict, heads: int, inputs: tuple[str, str],
           following: torch.nn.LayerNorm, rotary: dict | None,
           normed_name: str = "") -> tuple[str, str]:  # fmt: skip
    """One layer: (its input normed, the residual stream) → the same for the next layer."""
    normed, hidden = inputs
    prefix = graph.names[id(parts["q"])].rsplit(".", 1)[0]
    qkv = graph.linear(normed, [parts["q"], parts["k"], parts["v"]], f"{prefix}.qkv_proj")
    query, key, value = graph.node("Split", [qkv], 3, axis=-1, num_outputs=3)
    if rotary:
        query, key = (graph.node("RotaryEmbedding", [x, *rotary["inputs"]], domain=MS_DOMAIN,
                                 num_heads=heads, rotary_embedding_dim=rotary["dim"],
                                 interleaved=0)[0] for x in (query, key))  # fmt: skip
    head_size = parts["q"].out_features // heads
    (context,) = graph.node("MultiHeadAttention", [query, key, value], 1, f"{prefix}.attention",
                            MS_DOMAIN, num_heads=heads, scale=head_size**-0.5)  # fmt: skip
    attended = graph.linear(context, [parts["o"]])
    normed, hidden = graph.skip_norm(attended, hidden, parts["norm2"], parts["norm2"].eps)
    (up,) = graph.node("Gelu", [graph.linear(normed, [parts["fc1"]])], domain=MS_DOMAIN)
    down = graph.linear(up, [parts["fc2"]])
    return graph.skip_norm(down, hidden, following, following.eps, normed_name)


def _rotary(graph: GraphBuilder, encoder: AudioEncoder) -> dict:
    """GLM-ASR's rotary: cos/sin tables over its position limit, rotating the first
    ``len(inv_freq) * 2`` dims of each head (half of them: partial_rotary_factor 0.5)."""
    rotary = encoder.module.rotary_emb
    cos, sin = rotary_tables(rotary, encoder.module.config.max_position_embeddings)
    cos, sin = graph.weight("rotary.cos", cos), graph.weight("rotary.sin", sin)
    return {"inputs": [graph.constant([0]), cos, sin], "dim": 2 * len(rotary.inv_freq)}


def export_encoder(encoder: AudioEncoder, path: Path) -> None:
    """Write the encoder graph to ``path`` (+ ``.data``)."""
    config, module = _config(encoder), encoder.module
    heads = getattr(config, "num_attention_heads", None) or config.encoder_attention_heads
    with ExternalWeights(path) as weights:
        graph = GraphBuilder(weights, module)
        x = _conv(graph, _conv(graph, "input_features", module.conv1), module.conv2)
        (x,) = graph.node("Transpose", [x], perm=[0, 2, 1])
        rotary = None
        if encoder.kind == "glmasr":
            rotary = _rotary(graph, encoder)
        else:  # Whisper: the first T rows of its position table
            table = graph.parameter(module.embed_positions)
            (frames,) = graph.node("Shape", [x], start=1, end=2)
            (rows,) = graph.node("Slice", [table, graph.constant([0]), frames, graph.constant([0])])
            (x,) = graph.node("Add", [x, rows])
        layers = [_parts(encoder, layer) for layer in module.layers]
        final = module.norm if encoder.kind == "glmasr" else module.layer_norm
        first = layers[0]["norm1"]
        (normed,) = graph.node("LayerNormalization", [x, *graph.norm_weights(first)], axis=-1,
                               epsilon=first.eps)  # fmt: skip
        state = (normed, x)
        for index, parts in enumerate(layers):
            last = index + 1 == len(layers)
            following = final if last else layers[index + 1]["norm1"]
            output = "encoder_states" if last else ""
            state = _layer(graph, parts, heads, state, following, rotary, output)
        n_mels = module.conv1.in_channels
        graph.save(
            "encoder",
            [float_input("input_features", [1, n_mels, "frames"])],
            [float_input("encoder_states", [1, "encoder_frames", encoder.hidden_size])],
        )
