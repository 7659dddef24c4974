"""Reading and writing ONNX files the way every bundle stores them (export and quantize share it).

Weights go to one external ``<graph>.onnx.data`` file per graph: it keeps the protobuf under its
2 GB limit, lets onnxruntime map the weights, and lets the runtime read the token-embedding rows
straight out of the decoder's LM head (see ``tensor_location``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx

from tinyaudio.errors import TinyAudioError

# onnx 1.23 writes IR version 14 by default; onnxruntime 1.31 reads up to 13 and the ops we use
# need 10 at most.
IR_VERSION = 10
OPSET = 21  # every graph's default-domain opset
MS_DOMAIN = "com.microsoft"  # onnxruntime's contrib operators
INLINE_BYTES = 1024  # smaller tensors stay in the protobuf, as save_model leaves them
ALIGN_BYTES = 1 << 20  # tensors this large start on an ALIGNMENT boundary: mappable
ALIGNMENT = 1 << 16  # onnx's own choice: a page on every platform (Windows' mapping granularity)


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Save with all weights in ``<name>.data`` next to the graph."""
    model.ir_version = min(model.ir_version, IR_VERSION)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=INLINE_BYTES,
    )


class ExternalWeights:
    """Writes a graph's weights to ``<name>.data`` one by one as the graph is built, so a writer
    never holds a second copy of the model's weights (as ``save_model`` on a full proto does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.with_name(path.name + ".data")
        self.file: BinaryIO | None = None

    def __enter__(self) -> ExternalWeights:
        self.file = self.data.open("wb")
        return self

    def __exit__(self, *exc_info) -> None:
        self.file.close()

    def add(self, name: str, array: np.ndarray) -> onnx.TensorProto:
        """The initializer ``name``: inline if small, else appended to the data file."""
        if array.nbytes < INLINE_BYTES:
            return onnx.numpy_helper.from_array(array, name)
        offset = self.file.tell()
        if array.nbytes >= ALIGN_BYTES and offset % ALIGNMENT:
            offset += ALIGNMENT - offset % ALIGNMENT
            self.file.seek(offset)
        self.file.write(np.ascontiguousarray(array).data)
        tensor = onnx.TensorProto(name=name, dims=array.shape)
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.data.name), ("offset", offset),
                           ("length", array.nbytes)):  # fmt: skip
            tensor.external_data.add(key=key, value=str(value))
        return tensor

    def save(self, model: onnx.ModelProto) -> None:
        model.ir_version = min(model.ir_version, IR_VERSION)
        self.file.flush()
        onnx.save_model(model, str(self.path))


def load_model(path: Path, weights: bool = True) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=weights)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise TinyAudioError(f"cannot read ONNX graph {path}: {exc}") from None


def graph_io(model: onnx.ModelProto) -> dict[str, list[dict[str, Any]]]:
    """Graph inputs/outputs as {name, dtype, shape} (symbolic dims by name), for the manifest."""

    def describe(values) -> list[dict[str, Any]]:
        out = []
        for value in values:
            tensor = value.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            out.append({"name": value.name, "dtype": dtype, "shape": shape})
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


def tensor_location(model: onnx.ModelProto, path: Path, name: str) -> dict[str, Any]:
    """Where initializer ``name`` of ``model`` (read from ``path``) lies in its external data
    file: file, offset, length, shape."""
    for tensor in model.graph.initializer:
        if tensor.name == name:
            info = {entry.key: entry.value for entry in tensor.external_data}
            if "location" not in info:
                raise TinyAudioError(f"{path}: initializer {name} is not stored externally")
            return {
                "file": info["location"],
                "offset": int(info.get("offset", 0)),
                "length": int(info["length"]),
                "shape": list(tensor.dims),
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).name,
            }
    raise TinyAudioError(f"{path} has no initializer named {name}")
