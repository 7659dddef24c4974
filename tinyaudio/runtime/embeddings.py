"""Token embeddings read from the decoder's own LM-head weights (tied embeddings ship once).

Qwen3-0.6B ties its input embeddings to the LM head: a [151670, 1024] table, 622 MB in FP32.
The decoder graph already holds that matrix as its LM head, row per token (FP32 ``Gemm`` with
``transB``, or ``MatMulNBits`` blocks when quantized). The manifest records where those bytes lie
in ``decoder.onnx.data``; we read just the rows a prompt needs with ``pread`` and dequantize them.
Not even a memory map: on current kernels a mapped file faults in whole large folios (measured:
+118 MB resident for 100 random FP32 rows), while a read costs only the row's bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tinyaudio.errors import TinyAudioError


class _RowReader:
    """Rows of a [rows, ...] tensor stored at ``offset`` in a file, read on demand."""

    def __init__(self, directory: Path, where: dict[str, Any], rows: int) -> None:
        self.path = directory / where["file"]
        self.dtype = np.dtype(where["dtype"])
        self.offset = where["offset"]
        self.row_items = int(np.prod(where["shape"])) // rows
        self.row_bytes = self.row_items * self.dtype.itemsize
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise TinyAudioError(
                f"cannot read the token embeddings in {self.path}: {exc}"
            ) from None
        if os.fstat(self.fd).st_size < self.offset + rows * self.row_bytes:
            raise TinyAudioError(f"{self.path} is too short for the token-embedding table")

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        data = b"".join(
            os.pread(self.fd, self.row_bytes, self.offset + int(i) * self.row_bytes) for i in ids
        )
        return np.frombuffer(data, dtype=self.dtype).reshape(len(ids), self.row_items)

    def __del__(self) -> None:
        if hasattr(self, "fd"):
            os.close(self.fd)


class TokenEmbeddings:
    def __init__(self, directory: Path, spec: dict[str, Any]) -> None:
        self.hidden_size = spec["hidden_size"]
        self.format = spec["format"]
        self.rows = spec["weight"]["shape"][0]
        self.weight = _RowReader(directory, spec["weight"], self.rows)
        if self.format == "nbits":
            self.bits = spec["bits"]
            self.scales = _RowReader(directory, spec["scales"], self.rows)
            zero_points = spec.get("zero_points")
            self.zero_points = _RowReader(directory, zero_points, self.rows) if zero_points \
                else None  # fmt: skip
        elif self.format != "float32":
            raise TinyAudioError(f"unknown token-embedding format '{self.format}' in the manifest")

    def __call__(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """[len(ids), hidden] float32 embeddings."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.rows):
            raise TinyAudioError(f"token id out of range 0..{self.rows - 1}")
        if self.format == "float32":
            return self.weight(ids).astype(np.float32, copy=True)
        return self._dequantize(ids)

    def _dequantize(self, ids: np.ndarray) -> np.ndarray:
        """MatMulNBits blocks → floats: (q - zero_point) · scale, low nibble first for 4 bits."""
        packed = self.weight(ids)  # [n, blocks × bytes per block]
        q = np.stack([packed & 0x0F, packed >> 4], axis=-1) if self.bits == 4 else packed
        scales = self.scales(ids).astype(np.float32)
        blocks = scales.shape[1]
        q = q.reshape(len(ids), blocks, -1).astype(np.float32)
        if self.zero_points is None:
            zero = np.full((len(ids), blocks), 1 << (self.bits - 1), dtype=np.float32)
        else:
            zp = self.zero_points(ids)
            if self.bits == 4:
                zp = np.stack([zp & 0x0F, zp >> 4], axis=-1).reshape(len(ids), -1)
            zero = zp[:, :blocks].astype(np.float32)
        values = (q - zero[..., None]) * scales[..., None]
        return values.reshape(len(ids), -1)[:, : self.hidden_size]
