"""Synthetic recordings with known speech regions: espeak-ng utterances, silences, noise.

Shared by the live-transcription tests and benchmarks/vad.py, which need to know where the speech
really is. espeak-ng is installed by `make` (see the Makefile's `system` target).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinyaudio.runtime.audio import load_audio

RATE = 16000
QUIET = 1e-3  # espeak-ng pads each clip with digital near-silence; below this is not speech


def speak(text: str, words_per_minute: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng, 16 kHz float32, trimmed to the speech itself."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "speech.wav"
        command = ["espeak-ng", "-s", str(words_per_minute), "-w", str(path), text]
        subprocess.run(command, check=True, capture_output=True)
        audio = load_audio(path)
    loud = np.flatnonzero(np.abs(audio) > QUIET)
    return audio[loud[0] : loud[-1] + 1]


def scene(
    texts: list[str], gap: float = 2.0, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Utterances separated by ``gap`` seconds of silence (also before the first and after the
    last), with white noise of RMS ``noise`` throughout → (audio, [(start s, end s)] of speech)."""
    silence = np.zeros(int(gap * RATE), np.float32)
    parts, regions, position = [silence], [], len(silence)
    for text in texts:
        speech = speak(text)
        regions.append((position / RATE, (position + len(speech)) / RATE))
        parts += [speech, silence]
        position += len(speech) + len(silence)
    audio = np.concatenate(parts)
    if noise:
        audio += noise * np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32)
    return audio, regions
