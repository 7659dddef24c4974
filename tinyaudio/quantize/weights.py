"""Weight quantization of one graph, with onnxruntime's own quantizers (no torch).

- ``int8_dynamic``: MatMul weights INT8 per output channel, activations quantized at run time
  (MatMulInteger, VNNI u8s8). Best for the encoder's large-M GEMMs (2-4x FP32 here).
- ``nbits``: weight-only MatMulNBits (4 or 8 bits, blockwise, symmetric). Best for single-token
  decode, which is bound by reading weights. The decoder's LM head (a ``Gemm`` over the [vocab, H]
  table in the FP32 graph) becomes a MatMulNBits over its transpose, optionally at other bits;
  its packed rows are then also the token-embedding table (runtime/embeddings.py).
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tinyaudio import onnx_files
from tinyaudio.errors import TinyAudioError

LM_HEAD = "lm_head"
COLUMNS = 8192  # output columns quantized at once (the LM head: 64 MB of FP32 at 2048 wide)

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
    """MatMulNBits for every MatMul with a stored weight, and for the LM head; the LM head at
    ``lm_head_bits`` and layers whose name ends with one of ``eight_bit_layers`` (e.g.
    ``qkv_proj``) at 8 bits.

    Streamed: each weight is read from the FP32 data file, quantized (onnxruntime's own block
    quantizer) and written before the next is read, so this holds one weight at a time, never the
    decoder (8 GB in FP32 for Qwen3-1.7B)."""
    model = onnx_files.load_model(source, weights=False)
    graph = model.graph
    stored = {tensor.name: tensor for tensor in graph.initializer}
    uses = Counter(name for node in graph.node for name in node.input)
    read = _TensorReader(source)
    nodes, replaced = [], set()
    with onnx_files.ExternalWeights(target) as out:
        initializers = []
        for node in graph.node:
            head = node.op_type == "Gemm" and "logits" in node.output
            weight = node.input[1] if len(node.input) > 1 else ""
            if not (head or node.op_type == "MatMul") or weight not in stored or uses[weight] > 1:
                nodes.append(node)
                continue
            if head:
                _check_head(node)
                width, name = lm_head_bits, LM_HEAD
            else:
                eight = node.name.endswith(tuple(eight_bit_layers))
                width, name = (8 if eight else bits), f"{node.name}_Q{8 if eight else bits}"
            packed, scales, k, n = _block_quantize(read, stored[weight], head, width, block_size)
            inputs = [node.input[0], f"{weight}_Q{width}", f"{weight}_scales"]
            initializers += [out.add(inputs[1], packed), out.add(inputs[2], scales)]
            nodes.append(helper.make_node(
                "MatMulNBits", inputs, list(node.output), name,
                domain="com.microsoft", K=k, N=n, bits=width, block_size=block_size,
                accuracy_level=accuracy_level,
            ))  # fmt: skip
            replaced.add(weight)
        for tensor in graph.initializer:
            if tensor.name not in replaced:
                initializers.append(out.add(tensor.name, read(tensor)))
        del graph.node[:], graph.initializer[:]
        graph.node.extend(nodes)
        graph.initializer.extend(initializers)
        if not any(n.domain == "com.microsoft" for n in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        out.save(model)


class _TensorReader:
    """An initializer's values, or a range of its rows, read from the graph's data file into
    plain memory (not mapped: mapped pages would stay resident until the map is dropped)."""

    def __init__(self, graph_path: Path) -> None:
        self.directory = graph_path.parent

    def __call__(self, tensor: onnx.TensorProto, rows: tuple[int, int] | None = None) -> np.ndarray:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            array = numpy_helper.to_array(tensor)
            return array if rows is None else array[rows[0] : rows[1]]
        info = {entry.key: entry.value for entry in tensor.external_data}
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        shape = list(tensor.dims)
        row_items = int(np.prod(shape[1:]))
        start, stop = rows or (0, shape[0])
        offset = int(info.get("offset", 0)) + start * row_items * dtype.itemsize
        array = np.fromfile(self.directory / info["location"], dtype, (stop - start) * row_items,
                            offset=offset)  # fmt: skip
        return array.reshape([stop - start, *shape[1:]])


def _block_quantize(read: _TensorReader, tensor: onnx.TensorProto, transposed: bool, bits: int,
                    block_size: int) -> tuple[np.ndarray, np.ndarray, int, int]:  # fmt: skip
    """(packed [N, blocks, bytes], scales [N, blocks], K, N) of x @ B, B = the tensor (or its
    transpose, for the LM head's [vocab, H] table). Columns are independent, so they are
    quantized in slices: the LM head never needs its whole FP32 transpose in memory."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        DefaultWeightOnlyQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, bits=bits)
    quantizer = DefaultWeightOnlyQuantizer(config)
    if transposed:
        n, k = tensor.dims
        slices = [read(tensor, (i, min(i + COLUMNS, n))).T for i in range(0, n, COLUMNS)]
    else:
        k, n = tensor.dims
        whole = read(tensor)
        slices = [whole[:, i : i + COLUMNS] for i in range(0, n, COLUMNS)]
    packed, scales = [], []
    for columns in slices:
        block, scale, _ = quantizer.qbits_block_quant(np.ascontiguousarray(columns, np.float32))
        packed.append(block)
        scales.append(scale)
    return np.concatenate(packed), np.concatenate(scales), k, n


def _check_head(node: onnx.NodeProto) -> None:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if len(node.input) > 2:
        raise TinyAudioError("decoder LM head has a bias; only bias-free heads are supported")
    if attrs.get("transB") != 1 or attrs.get("transA", 0) != 0:
        raise TinyAudioError("decoder LM head is not a Gemm with transB=1")


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
