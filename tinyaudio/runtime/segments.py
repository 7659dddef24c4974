"""Long audio → windows of at most 30 s, the encoder's limit (upstream silently drops the rest).

Two ways, both from a stream of blocks (memory holds one window and one block however long the
recording is):
- ``windows``: back to back, each cut at the quietest 100 ms within its last 10 s, a good,
  dependency-free proxy for a pause, so a window's transcript stays whole;
- ``speech_windows`` (``--vad``): one window per stretch of speech that Silero VAD finds (the
  live path's Segmenter: ends after 0.5 s of pause, 0.2 s of context kept each side), so silence
  and noise are never decoded and every cut falls in a pause.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from tinyaudio.live.vad import Segmenter
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.speech import SpeechDetector

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


def speech_windows(
    blocks: Iterable[np.ndarray], detector: SpeechDetector
) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, window) for each utterance Silero VAD finds in the 16 kHz ``blocks``."""
    detector.reset()
    segmenter = Segmenter(detector, max_seconds=MAX_SECONDS)
    seen = 0
    for block in blocks:
        seen += len(block)
        for utterance in segmenter.feed(block):
            yield round(utterance.offset * SAMPLE_RATE), utterance.audio
    if (last := segmenter.flush()) is not None:
        start = round(last.offset * SAMPLE_RATE)
        yield start, last.audio[: seen - start]  # the detector's last frame was padded
