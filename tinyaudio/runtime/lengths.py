"""Audio length bookkeeping: samples → mel frames → encoder frames → audio tokens.

These formulas decide how many `<audio>` slots the prompt gets, so the reference transcriber and
the runtime must share them (upstream `compute_encoder_output_length` and `get_output_length`).
"""

from __future__ import annotations

HOP_LENGTH = 160
SAMPLE_RATE = 16000
WINDOW_FRAMES = 3000  # 30 s: upstream pads or truncates every clip to this many mel frames
DEFAULT_CONV_LAYERS = ((1, 3, 1), (1, 3, 2))  # (padding, kernel, stride) of the encoder's convs
MOSA_CONV = (1, 3, 2)  # the MOSA projector's two downsampling convs


def mel_frames(num_samples: int) -> int:
    """Real mel length of a clip: the feature extractor's attention mask sum, capped at 30 s."""
    return min(-(-num_samples // HOP_LENGTH), WINDOW_FRAMES)


def conv_output_length(length: int, layers) -> int:
    for padding, kernel, stride in layers:
        length = (length + 2 * padding - (kernel - 1) - 1) // stride + 1
    return length


def audio_tokens(
    projector_type: str,
    encoder_frames: int,
    pool_stride: int = 4,
    qformer_window: int = 15,
    qformer_queries: int = 3,
) -> int:
    """Projector output rows for ``encoder_frames`` real encoder frames (never negative)."""
    if projector_type in ("mlp", "moe"):
        tokens = (encoder_frames - pool_stride) // pool_stride + 1
    elif projector_type == "mosa":
        tokens = conv_output_length(encoder_frames, (MOSA_CONV, MOSA_CONV))
    elif projector_type == "qformer":
        tokens = -(-encoder_frames // qformer_window) * qformer_queries
    else:
        raise ValueError(f"unknown projector type {projector_type!r}")
    return max(tokens, 0)
