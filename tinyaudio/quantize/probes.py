"""Deterministic probe audio for accuracy gates and export parity, generated (no files needed).

Gates compare quantized graphs with FP32 ones on inputs in the real format: 16 kHz audio through
the real front end. These signals cover what a microphone delivers (voiced harmonics with moving
pitch and formants, broadband noise, near-silence with a tone burst); users add real recordings
with ``tinyaudio-quantize --gate-audio``.
"""

from __future__ import annotations

import numpy as np

from tinyaudio.runtime.lengths import SAMPLE_RATE


def _voiced(seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)  # a gliding voice
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    formants = (700 + 300 * np.sin(2 * np.pi * 1.3 * t), 1200 + 500 * np.sin(2 * np.pi * 0.9 * t))
    signal = np.zeros_like(t)
    for harmonic in range(1, 30):
        freq = harmonic * pitch
        gain = sum(np.exp(-(((freq - f) / 150) ** 2)) for f in formants) + 0.05
        signal += gain * np.sin(harmonic * phase) / harmonic
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2  # ~4 syllables per second
    signal = signal * syllables + 0.01 * rng.standard_normal(len(t))
    return 0.3 * signal / np.abs(signal).max()


def probe_signals(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    burst = np.zeros(2 * SAMPLE_RATE)
    burst[SAMPLE_RATE // 2 : SAMPLE_RATE] = 0.2 * np.sin(
        2 * np.pi * 440 * np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    )
    signals = {
        "voiced": _voiced(4.0, rng),
        "noise": 0.1 * rng.standard_normal(3 * SAMPLE_RATE),
        "tone-in-silence": burst + 1e-4 * rng.standard_normal(len(burst)),
    }
    return {name: x.astype(np.float32) for name, x in signals.items()}
