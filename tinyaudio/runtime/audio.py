"""Audio files and arrays → 16 kHz mono float32, the only input the models understand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.lengths import SAMPLE_RATE


def load_audio(path: str | Path) -> np.ndarray:
    """Decode any format libsndfile reads (wav, flac, ogg, mp3, ...) and convert it."""
    path = Path(path)
    if not path.is_file():
        raise TinyAudioError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise TinyAudioError(f"cannot decode {path}: {exc}") from None
    return to_model_input(data, rate, str(path))


def to_model_input(data: np.ndarray, sample_rate: int, name: str = "audio") -> np.ndarray:
    """[samples] or [samples, channels] at any rate → 16 kHz mono float32, with sanity checks."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.ndim != 1:
        raise TinyAudioError(f"{name}: expected [samples] or [samples, channels], got {data.shape}")
    if np.issubdtype(data.dtype, np.integer):
        data = data / float(np.iinfo(data.dtype).max)
    data = data.astype(np.float32, copy=False)
    if data.size == 0:
        raise TinyAudioError(f"{name}: the audio is empty")
    if not np.isfinite(data).all():
        raise TinyAudioError(f"{name}: the audio contains NaN or infinite samples")
    if sample_rate <= 0:
        raise TinyAudioError(f"{name}: invalid sample rate {sample_rate}")
    if sample_rate != SAMPLE_RATE:
        data = soxr.resample(data, sample_rate, SAMPLE_RATE).astype(np.float32, copy=False)
        if data.size == 0:
            raise TinyAudioError(f"{name}: too short to resample to {SAMPLE_RATE} Hz")
    return data
