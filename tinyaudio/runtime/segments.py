"""Long audio → windows of at most 30 s, cut at the quietest moment near each window's end.

The encoder sees 30 s at most (upstream silently drops the rest). Cutting in a pause rather than
mid-word keeps each window's transcript whole; the quietest 100 ms within the last 10 s of a
window is a good, dependency-free proxy for a pause.
"""

from __future__ import annotations

import numpy as np

from tinyaudio.runtime.lengths import SAMPLE_RATE

MAX_SECONDS = 30.0
SEARCH_SECONDS = 10.0
FRAME = SAMPLE_RATE // 100  # 10 ms energy frames
SMOOTH = 10  # frames: the quietest 100 ms


def split_points(audio: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)] sample ranges covering ``audio``, each at most 30 s long."""
    limit = int(MAX_SECONDS * SAMPLE_RATE)
    bounds, start = [], 0
    while len(audio) - start > limit:
        search_from = start + limit - int(SEARCH_SECONDS * SAMPLE_RATE)
        region = audio[search_from : start + limit]
        frames = len(region) // FRAME
        energy = (region[: frames * FRAME].reshape(frames, FRAME) ** 2).mean(axis=1)
        smoothed = np.convolve(energy, np.ones(SMOOTH) / SMOOTH, mode="valid")
        quietest = int(np.argmin(smoothed)) + SMOOTH // 2
        cut = search_from + quietest * FRAME
        bounds.append((start, cut))
        start = cut
    bounds.append((start, len(audio)))
    return bounds
