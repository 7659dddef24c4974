"""Long audio → windows of at most 30 s, cut at the quietest moment near each window's end.

The encoder sees 30 s at most (upstream silently drops the rest). Cutting in a pause rather than
mid-word keeps each window's transcript whole; the quietest 100 ms within the last 10 s of a
window is a good, dependency-free proxy for a pause. Windows are cut from a stream of blocks, so
memory holds one window and one block however long the recording is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from tinyaudio.runtime.lengths import SAMPLE_RATE

MAX_SECONDS = 30.0
SEARCH_SECONDS = 10.0
FRAME = SAMPLE_RATE // 100  # 10 ms energy frames
SMOOTH = 10  # frames: the quietest 100 ms


def quietest_cut(window: np.ndarray) -> int:
    """The sample index of the quietest 100 ms in the last SEARCH_SECONDS of ``window``."""
    search_from = len(window) - int(SEARCH_SECONDS * SAMPLE_RATE)
    region = window[search_from:]
    frames = len(region) // FRAME
    energy = (region[: frames * FRAME].reshape(frames, FRAME) ** 2).mean(axis=1)
    smoothed = np.convolve(energy, np.ones(SMOOTH) / SMOOTH, mode="valid")
    return search_from + (int(np.argmin(smoothed)) + SMOOTH // 2) * FRAME


def windows(blocks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, window) pairs covering the 16 kHz ``blocks``, each window at most 30 s."""
    limit = int(MAX_SECONDS * SAMPLE_RATE)
    pending = np.zeros(0, np.float32)
    start = 0
    for block in blocks:
        pending = np.concatenate([pending, block])
        while len(pending) > limit:
            cut = quietest_cut(pending[:limit])
            yield start, pending[:cut]
            pending, start = pending[cut:], start + cut
    if len(pending):
        yield start, pending
