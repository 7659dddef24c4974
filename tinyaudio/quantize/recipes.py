"""The quantization recipes: what each graph becomes, per precision, in the order they are tried.

Light on purpose (no onnx, no onnxruntime): `tinyaudio bench` reads them to tell whether a cached
bundle was quantized by today's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyaudio.errors import TinyAudioError

# The 4-bit encoder's blocks. MatMulNBits keeps about 0.5 + 12 / block bytes per weight resident
# (packed data, its packed scales and block sums, and the file's scales, still mapped): 0.59 at
# 128, 0.88 at 32, where INT8 keeps 1.0. Measured on the real-size GLM-ASR encoder: 424 MB after
# load at 128, 480 at 64, 671 for INT8 (docs/benchmarks.md#runtime-memory).
ENCODER_BLOCK_SIZE = 128


@dataclass(frozen=True)
class Recipe:
    name: str
    encoder: str  # "fp32" | "int8-dynamic" | "int4-nbits"
    projector: str
    decoder_bits: int
    lm_head_bits: int
    block_size: int
    accuracy_level: int  # MatMulNBits: 4 = int8 activations (VNNI), 1 = fp32 activations
    eight_bit_layers: tuple[str, ...] = ()  # decoder layers kept at 8 bits in a 4-bit recipe

    def graph_recipe(self, graph: str) -> dict:
        if graph == "decoder":
            return _nbits(self.decoder_bits, self.lm_head_bits, self.block_size,
                          self.accuracy_level, self.eight_bit_layers)  # fmt: skip
        method = getattr(self, graph)
        if method == "int4-nbits":  # weight-only, for the smallest resident encoder
            return _nbits(4, 4, ENCODER_BLOCK_SIZE, 4, ())
        if method == "fp32":
            return {"method": "fp32"}
        return {"method": method, "per_channel": True, "op_types": ["MatMul"]}


def _nbits(bits: int, lm_head_bits: int, block_size: int, accuracy_level: int,
           eight_bit_layers: tuple[str, ...]) -> dict:  # fmt: skip
    """A MatMulNBits graph's spec, as quantize/weights.nbits takes it."""
    return {
        "method": "matmul-nbits",
        "bits": bits,
        "lm_head_bits": lm_head_bits,
        "block_size": block_size,
        "accuracy_level": accuracy_level,
        "eight_bit_layers": list(eight_bit_layers),
        "symmetric": True,
    }


def ladder(precision: str, block_size: int) -> list[Recipe]:
    """Recipes for a precision, from fastest to most conservative."""
    if precision == "int8":
        return [
            Recipe("int8", "int8-dynamic", "int8-dynamic", 8, 8, block_size, 4),
            Recipe("int8-fp32-audio", "fp32", "fp32", 8, 8, block_size, 4),
        ]
    if precision == "int4":  # the smallest bundle in memory first: the encoder at 4 bits too
        return [
            Recipe("int4", "int4-nbits", "int8-dynamic", 4, 4, block_size, 4),
            Recipe("int4-int8-encoder", "int8-dynamic", "int8-dynamic", 4, 4, block_size, 4),
            Recipe("int4-lm-head-int8", "int8-dynamic", "int8-dynamic", 4, 8, block_size, 4),
            # llama.cpp's Q4_K_M idea: the layers most sensitive to 4 bits stay at 8.
            Recipe(
                "int4-mixed",
                "int8-dynamic",
                "int8-dynamic",
                4,
                8,
                block_size,
                4,
                ("qkv_proj", "down_proj"),
            ),
        ]
    raise TinyAudioError(f"unknown precision '{precision}': choose int8 or int4")


# The decoder's MatMulNBits block when --block-size is not given: the first is tried through the
# whole ladder, then the next. Block 128 decodes the real-size 4-bit decoder 1.13-1.23x faster
# than 32 (interleaved, EPYC with VNNI) and cost the demo model no WER; 32 keeps more of FP32's
# logits, for a model whose gate 128 fails (docs/export.md).
DEFAULT_BLOCK_SIZES = {"int8": (128,), "int4": (128, 32)}


def block_sizes(precision: str, block_size: int | None) -> tuple[int, ...]:
    """The decoder blocks to try, in order: the one asked for, or the defaults."""
    if precision not in DEFAULT_BLOCK_SIZES:
        raise TinyAudioError(f"unknown precision '{precision}': choose int8 or int4")
    return (block_size,) if block_size else DEFAULT_BLOCK_SIZES[precision]
