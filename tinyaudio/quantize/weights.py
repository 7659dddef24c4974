"""Weight quantization of one graph, with onnxruntime's own quantizers (no torch).

- ``int8_dynamic``: MatMul weights INT8 per output channel, activations quantized at run time
  (MatMulInteger, VNNI u8s8). Best for the encoder's large-M GEMMs (2-4x FP32 here).
- ``nbits``: weight-only MatMulNBits (4 or 8 bits, blockwise, symmetric). Best for single-token
  decode, which is bound by reading weights. The decoder's LM head (a ``Gemm`` over the [vocab, H]
  table in the FP32 graph) is turned into a MatMul first so it is quantized too, optionally at
  other bits; its packed rows are then also the token-embedding table (runtime/embeddings.py).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from tinyaudio import onnx_files
from tinyaudio.errors import TinyAudioError

LM_HEAD = "lm_head"

logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)


def int8_dynamic(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs every tensor and a generic hint
    try:
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            staged = Path(scratch) / target.name
            quantize_dynamic(
                str(source),
                str(staged),
                per_channel=True,
                reduce_range=False,  # VNNI has no u8s8 overflow; reduce_range only costs accuracy
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                use_external_data_format=True,
                # contrib ops (attention, fused norms) carry no inferred types: all are float
                extra_options={
                    "MatMulConstBOnly": True,
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                },
            )
            onnx_files.save_model(onnx_files.load_model(staged), target)
    finally:
        root.setLevel(level)


def nbits(
    source: Path,
    target: Path,
    bits: int,
    block_size: int,
    accuracy_level: int,
    lm_head_bits: int,
    eight_bit_layers: tuple[str, ...] = (),
) -> None:
    """MatMulNBits everywhere; the LM head at ``lm_head_bits`` and layers whose name ends with
    one of ``eight_bit_layers`` (e.g. ``qkv_proj``) at 8 bits."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    model = _lm_head_as_matmul(onnx_files.load_model(source))
    weights = {tensor.name for tensor in model.graph.initializer}
    groups: dict[int, list[str]] = {}
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            continue
        if node.name == LM_HEAD:
            width = lm_head_bits
        elif node.name.endswith(tuple(eight_bit_layers)):
            width = 8
        else:
            width = bits
        groups.setdefault(width, []).append(node.name)
    for width, names in groups.items():
        config = DefaultWeightOnlyQuantConfig(
            block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level, bits=width
        )
        others = [name for group in groups.values() if group is not names for name in group]
        # nodes_to_include only adds to op_types_to_quantize; exclusion is what restricts.
        quantizer = MatMulNBitsQuantizer(model, algo_config=config, nodes_to_exclude=others)
        quantizer.process()
        model = quantizer.model.model
    onnx_files.save_model(model, target)


def _lm_head_as_matmul(model: onnx.ModelProto) -> onnx.ModelProto:
    """Gemm(h, W[vocab, H], transB=1) → MatMul(h, Wᵀ) named ``lm_head`` (what quantizers know)."""
    graph = model.graph
    heads = [i for i, n in enumerate(graph.node) if n.op_type == "Gemm" and "logits" in n.output]
    if not heads:
        raise TinyAudioError("decoder graph has no Gemm LM head producing 'logits'")
    index, node = heads[0], graph.node[heads[0]]
    if len(node.input) > 2:
        raise TinyAudioError("decoder LM head has a bias; only bias-free heads are supported")
    initializers = {t.name: t for t in graph.initializer}
    weight = numpy_helper.to_array(initializers[node.input[1]])
    transposed = numpy_helper.from_array(np.ascontiguousarray(weight.T), node.input[1] + ".T")
    graph.initializer.remove(initializers[node.input[1]])
    graph.initializer.append(transposed)
    matmul = onnx.helper.make_node("MatMul", [node.input[0], transposed.name], ["logits"], LM_HEAD)
    graph.node.remove(node)
    graph.node.insert(index, matmul)
    return model


def lm_head_embeddings(graph_path: Path, hidden_size: int) -> dict:
    """Where the decoder's LM-head rows are (the manifest's ``embeddings`` entry)."""
    model = onnx_files.load_model(graph_path, weights=False)
    node = next(n for n in model.graph.node if "logits" in n.output)
    locate = lambda name: onnx_files.tensor_location(model, graph_path, name)  # noqa: E731
    if node.op_type == "Gemm":
        return {"format": "float32", "hidden_size": hidden_size, "weight": locate(node.input[1])}
    if node.op_type != "MatMulNBits":
        raise TinyAudioError(f"decoder LM head is a {node.op_type}; cannot share its rows")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    zero_points = node.input[3] if len(node.input) > 3 and node.input[3] else None
    return {
        "format": "nbits",
        "hidden_size": hidden_size,
        "bits": attrs["bits"],
        "block_size": attrs["block_size"],
        "weight": locate(node.input[1]),
        "scales": locate(node.input[2]),
        "zero_points": locate(zero_points) if zero_points else None,
    }
