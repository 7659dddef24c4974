"""The numpy log-mel front end against transformers' WhisperFeatureExtractor (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from transformers import WhisperFeatureExtractor

from tests.conftest import AUDIO
from tinyaudio.runtime.features import log_mel

CLIPS = {
    "speech": lambda: sf.read(AUDIO / "jfk.wav", dtype="float32")[0],
    "noise": lambda: 0.1 * np.random.default_rng(0).standard_normal(37_000).astype(np.float32),
    "silence": lambda: np.zeros(16_000, np.float32),
    "one sample": lambda: np.ones(1, np.float32),
    "over 30 s": lambda: np.tile(sf.read(AUDIO / "jfk.wav", dtype="float32")[0], 3),
}


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("clip", CLIPS)
def test_log_mel_matches_whisper_feature_extractor(clip, n_mels):
    audio = CLIPS[clip]()
    extractor = WhisperFeatureExtractor(feature_size=n_mels)
    reference = extractor(
        audio, sampling_rate=16000, return_attention_mask=True, return_tensors="np"
    )
    frames = int(reference["attention_mask"].sum())
    padded, padded_frames = log_mel(audio, n_mels, padded=True)
    fast, fast_frames = log_mel(audio, n_mels, padded=False)
    assert padded_frames == fast_frames == frames
    assert padded.shape == reference["input_features"].shape == (1, n_mels, 3000)
    assert fast.shape == (1, n_mels, frames)
    # The extractor's numpy implementation (what it runs without torch): the same numbers.
    signal = np.pad(audio[: 30 * 16000], (0, max(0, 30 * 16000 - len(audio))))[None]
    np.testing.assert_allclose(
        padded, extractor._np_extract_fbank_features(signal, "cpu"), atol=1e-6
    )
    # Its torch.stft path (what __call__ runs when torch is installed) differs from its own numpy
    # path by float32 FFT rounding: up to 2e-5 on loud speech with transformers 5.23, 4.4e-5
    # with 5.24 (a few of 240 000 values).
    np.testing.assert_allclose(padded, reference["input_features"], atol=6e-5, rtol=0)
    np.testing.assert_allclose(fast, padded[:, :, :frames], atol=1e-6, rtol=0)  # = exact, cut
