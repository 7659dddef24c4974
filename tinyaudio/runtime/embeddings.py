"""Token embeddings read from the decoder's own LM-head weights (tied embeddings ship once).

Qwen3-0.6B ties its input embeddings to the LM head: a [151670, 1024] table, 622 MB in FP32.
The decoder graph already holds that matrix as its LM head, row per token (FP32 ``Gemm`` with
``transB``, or ``MatMulNBits`` blocks when quantized). The manifest records where those bytes lie
in ``decoder.onnx.data``; we memory-map them and dequantize only the rows a prompt needs, so the
table costs neither disk nor resident memory a second time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinyaudio.errors import TinyAudioError


def _map(directory: Path, where: dict[str, Any]) -> np.ndarray:
    path = directory / where["file"]
    try:
        return np.memmap(path, dtype=np.dtype(where["dtype"]), mode="r",
                         offset=where["offset"], shape=tuple(where["shape"]))  # fmt: skip
    except (OSError, ValueError) as exc:
        raise TinyAudioError(f"cannot map the token embeddings in {path}: {exc}") from None


class TokenEmbeddings:
    def __init__(self, directory: Path, spec: dict[str, Any]) -> None:
        self.hidden_size = spec["hidden_size"]
        self.format = spec["format"]
        self.weight = _map(directory, spec["weight"])
        self.rows = self.weight.shape[0]
        if self.format == "nbits":
            self.bits = spec["bits"]
            self.block_size = spec["block_size"]
            self.scales = _map(directory, spec["scales"]).reshape(self.rows, -1)
            zero_points = spec.get("zero_points")
            self.zero_points = _map(directory, zero_points).reshape(self.rows, -1) if zero_points \
                else None  # fmt: skip
        elif self.format != "float32":
            raise TinyAudioError(f"unknown token-embedding format '{self.format}' in the manifest")

    def __call__(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """[len(ids), hidden] float32 embeddings."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.rows):
            raise TinyAudioError(f"token id out of range 0..{self.rows - 1}")
        if self.format == "float32":
            return np.asarray(self.weight[ids], dtype=np.float32)
        return self._dequantize(ids)

    def _dequantize(self, ids: np.ndarray) -> np.ndarray:
        """MatMulNBits blocks → floats: (q - zero_point) · scale, low nibble first for 4 bits."""
        packed = np.asarray(self.weight[ids])  # [n, blocks, bytes per block]
        if self.bits == 4:
            q = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(
                len(ids), packed.shape[1], -1
            )
        else:
            q = packed
        blocks = q.shape[1]
        if self.zero_points is None:
            zero = np.full((len(ids), blocks), 1 << (self.bits - 1), dtype=np.float32)
        else:
            zp = np.asarray(self.zero_points[ids])
            if self.bits == 4:
                zp = np.stack([zp & 0x0F, zp >> 4], axis=-1).reshape(len(ids), -1)
            zero = zp[:, :blocks].astype(np.float32)
        scales = np.asarray(self.scales[ids], dtype=np.float32)
        values = (q.astype(np.float32) - zero[..., None]) * scales[..., None]
        return values.reshape(len(ids), -1)[:, : self.hidden_size]
