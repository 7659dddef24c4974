"""Whisper's log-mel front end in numpy, identical to transformers' WhisperFeatureExtractor.

Two modes. ``padded=True`` is upstream's: every clip zero-padded to 30 s, so the encoder always
sees 3000 frames (needed for token-exact parity). ``padded=False`` computes the same frames for the
real audio only: the signal is zero-padded just far enough that every kept frame sees exactly the
samples it sees in the padded mode, so the result equals the padded features cut to the real length.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from tinyaudio.runtime.lengths import HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES, mel_frames

N_FFT = 400
WINDOW_SAMPLES = WINDOW_FRAMES * HOP_LENGTH  # 480000


def _hertz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hertz(mels: np.ndarray) -> np.ndarray:
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels[log_region] - 15.0))
    return freq


@cache
def mel_filters(n_mels: int) -> np.ndarray:
    """[n_fft/2+1, n_mels] Slaney-normalised triangular filters, 0 to 8 kHz, float64."""
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    mel_edges = np.linspace(
        _hertz_to_mel(np.array([0.0]))[0],
        _hertz_to_mel(np.array([SAMPLE_RATE / 2]))[0],
        n_mels + 2,
    )
    edges = _mel_to_hertz(mel_edges)
    widths = np.diff(edges)
    slopes = edges[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[None, :]


@cache
def _hann() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1]


def log_mel(audio: np.ndarray, n_mels: int = 128, padded: bool = True) -> tuple[np.ndarray, int]:
    """16 kHz mono float audio → ([1, n_mels, T] float32 log-mel, real frame count).

    T is 3000 when ``padded``; otherwise it is the real frame count (at most 3000).
    """
    audio = np.asarray(audio, dtype=np.float32)[:WINDOW_SAMPLES]
    frames = mel_frames(len(audio))
    length = WINDOW_SAMPLES if padded else min(frames * HOP_LENGTH + N_FFT, WINDOW_SAMPLES)
    signal = np.zeros(length, dtype=np.float32)
    signal[: len(audio)] = audio
    signal = np.pad(signal, N_FFT // 2, mode="reflect")
    count = WINDOW_FRAMES if padded else frames
    windows = np.lib.stride_tricks.sliding_window_view(signal, N_FFT)[::HOP_LENGTH][:count]
    # transformers' precision path: float64 window and filters, a complex64 spectrum, a float64
    # mel projection and log, float32 after; any other order drifts by ~1e-5 on loud speech.
    spectrum = np.fft.rfft(windows * _hann(), axis=-1).astype(np.complex64)
    power = np.abs(spectrum, dtype=np.float64) ** 2
    mel = np.log10(np.maximum(power @ mel_filters(n_mels), 1e-10)).astype(np.float32)
    # The padded mode's clamp uses the max over all 3000 frames; the zero-padded tail is -10, the
    # floor, so the max over the real frames (or -10 for an empty clip) is the same value.
    mel = np.maximum(mel, max(mel.max(initial=-10.0), -10.0) - 8.0)
    features = ((mel + 4.0) / 4.0).T[None].astype(np.float32)
    return features, frames
