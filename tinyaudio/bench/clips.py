"""Benchmark clips: real speech cut (and looped when short) to exact lengths."""

from __future__ import annotations

import numpy as np

from tinyaudio.runtime.lengths import SAMPLE_RATE

# A transcript's length: English speech runs ~150 words/min, ~1.2 Qwen3 tokens per word.
TOKENS_PER_AUDIO_SECOND = 3.0


def speech_clip(speech: np.ndarray, seconds: float) -> np.ndarray:
    """``seconds`` of 16 kHz ``speech`` (from load_audio), repeated if it is shorter."""
    return np.resize(speech, int(seconds * SAMPLE_RATE)).astype(np.float32)


def transcript_tokens(seconds: float) -> int:
    """The fixed number of tokens every configuration decodes for a clip (random weights never
    stop on their own, and a fair comparison needs the same work everywhere)."""
    return max(4, round(TOKENS_PER_AUDIO_SECOND * seconds))
