"""Weight quantization of one graph, weight by weight (no torch).

- ``int8_dynamic``: MatMul weights INT8 per output channel (quantize_dynamic's recipe), activations
  quantized at run time by onnxruntime's DynamicQuantizeMatMul (VNNI u8s8). Best for the
  encoder's large-M GEMMs (2-4x FP32 here).
- ``nbits``: weight-only MatMulNBits (4 or 8 bits, blockwise, symmetric). Best for single-token
  decode, which is bound by reading weights. The decoder's LM head (a ``Gemm`` over the [vocab, H]
  table in the FP32 graph) becomes a MatMulNBits over its transpose, optionally at other bits;
  its packed rows are then also the token-embedding table (runtime/embeddings.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tinyaudio import onnx_files
from tinyaudio.errors import TinyAudioError
from tinyaudio.onnx_files import MS_DOMAIN

LM_HEAD = "lm_head"
COLUMNS = 8192  # output columns quantized at once (the LM head: 64 MB of FP32 at 2048 wide)


def int8_dynamic(source: Path, target: Path) -> None:
    """Every MatMul with a stored [K, N] weight → onnxruntime's DynamicQuantizeMatMul: the weight
    INT8, symmetric per output channel (scale = max |column| / 127, as onnxruntime's
    quantize_dynamic makes it), the activations quantized at run time."""

    def quantize(node, tensor, read, add):
        if node.op_type != "MatMul" or len(tensor.dims) != 2:
            return None
        weight = read(tensor)
        scale = (np.abs(weight).max(axis=0).astype(np.float64) / 127).astype(np.float32)
        scale[scale < np.finfo(np.float32).tiny] = 1.0
        quantized = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        name = tensor.name
        inputs = [node.input[0], f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"]
        for input_name, array in zip(inputs[1:], (quantized, scale, np.zeros_like(quantized[0])),
                                     strict=True):  # fmt: skip
            add(input_name, array)
        return helper.make_node("DynamicQuantizeMatMul", inputs, list(node.output), node.name,
                                domain=MS_DOMAIN)  # fmt: skip

    _rewrite(source, target, quantize)


def nbits(
    source: Path,
    target: Path,
    bits: int,
    block_size: int,
    accuracy_level: int,
    lm_head_bits: int,
    eight_bit_layers: tuple[str, ...] = (),
) -> None:
    """MatMulNBits (onnxruntime's own block quantizer) for every MatMul with a stored weight and
    for the LM head; the LM head at ``lm_head_bits`` and layers whose name ends with one of
    ``eight_bit_layers`` (e.g. ``qkv_proj``) at 8 bits."""

    def quantize(node, tensor, read, add):
        head = node.op_type == "Gemm" and "logits" in node.output
        if not head and (node.op_type != "MatMul" or len(tensor.dims) != 2):
            return None
        if head:
            _check_head(node)
            width, name = lm_head_bits, LM_HEAD
        else:
            width = 8 if node.name.endswith(tuple(eight_bit_layers)) else bits
            name = f"{node.name}_Q{width}"
        packed, scales, k, n = _block_quantize(read, tensor, head, width, block_size)
        inputs = [node.input[0], f"{tensor.name}_Q{width}", f"{tensor.name}_scales"]
        add(inputs[1], packed)
        add(inputs[2], scales)
        return helper.make_node(
            "MatMulNBits", inputs, list(node.output), name, domain=MS_DOMAIN, K=k, N=n,
            bits=width, block_size=block_size, accuracy_level=accuracy_level,
        )  # fmt: skip

    _rewrite(source, target, quantize)


def _rewrite(source: Path, target: Path, quantize: Callable) -> None:
    """Copy graph ``source`` to ``target``, letting ``quantize(node, weight, read, add)`` replace
    each node whose second input is a stored weight used by that node alone: it reads the weight
    with ``read(weight)``, writes new ones with ``add(name, array)`` and returns the new node, or
    None to keep the node as it is.

    Streamed: each weight is read from the FP32 data file and written before the next is read,
    so quantizing holds one weight at a time, never the graph (8 GB in FP32 for Qwen3-1.7B's
    decoder; onnxruntime's quantizers hold it several times over)."""
    model = onnx_files.load_model(source, weights=False)
    graph = model.graph
    stored = {tensor.name: tensor for tensor in graph.initializer}
    uses = Counter(name for node in graph.node for name in node.input)
    read = _TensorReader(source)
    nodes, replaced, written = [], set(), []
    with onnx_files.ExternalWeights(target) as out:

        def add(name: str, array: np.ndarray) -> None:
            written.append(out.add(name, array))

        for node in graph.node:
            weight = node.input[1] if len(node.input) > 1 else ""
            new = None
            if weight in stored and uses[weight] == 1:
                new = quantize(node, stored[weight], read, add)
            if new is None:
                nodes.append(node)
            else:
                nodes.append(new)
                replaced.add(weight)
        kept = [out.add(t.name, read(t)) for t in graph.initializer if t.name not in replaced]
        del graph.node[:], graph.initializer[:]
        graph.node.extend(nodes)
        graph.initializer.extend(kept + written)
        if not any(opset.domain == MS_DOMAIN for opset in model.opset_import):
            model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
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
