"""The PyTorch reference transcriber end to end, against an independent greedy loop."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import AUDIO
from tinyaudio.export.loader import load_model
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.runtime.lengths import mel_frames
from tinyaudio.runtime.text import finish_transcript, truncate_repetitions


def speech(name: str = "jfk.wav") -> np.ndarray:
    data, rate = sf.read(AUDIO / name, dtype="float32")
    assert rate == 16000
    return data


STEPS = 24  # greedy steps compared with the oracle (it recomputes everything, so it is slow)


def greedy_without_cache(
    transcriber: ReferenceTranscriber, audio, padded: bool, steps: int = STEPS
) -> list[int]:
    """Recompute the whole sequence each step, no KV cache, no generate(): the oracle."""
    model = transcriber.model
    features, mel_length = transcriber.features(audio, padded)
    rows = transcriber.audio_embeddings(features, mel_length)
    ids = transcriber.prompt_ids(rows.shape[0])[0]
    table = model.language_model.get_input_embeddings()
    with torch.no_grad():
        embeds = table(ids).clone()
        embeds[ids == model.audio_token_id] = rows
        out: list[int] = []
        for _ in range(steps):
            logits = model.language_model(inputs_embeds=embeds[None], logits_to_keep=1).logits
            token = int(logits[0, -1].argmax())
            out.append(token)
            if token in model.eos_token_ids:
                break
            embeds = torch.cat([embeds, table(torch.tensor([token]))])
    return out


@pytest.fixture(scope="module")
def tiny_random():
    return ReferenceTranscriber(load_model("tiny-random"))


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "unpadded"])
def test_tiny_random_end_to_end(tiny_random, padded):
    audio = speech()
    result = tiny_random.transcribe(audio, padded=padded)
    assert result.token_ids[:STEPS] == greedy_without_cache(tiny_random, audio, padded)
    real_frames = mel_frames(len(audio))
    assert real_frames == 1100
    assert result.mel_frames == (3000 if padded else real_frames)
    assert result.num_audio_tokens == (((real_frames - 1) // 2 + 1) - 4) // 4 + 1 == 137
    assert result.prompt_ids.count(151669) == 137
    assert 0 < len(result.token_ids) <= tiny_random.model.max_new_tokens
    text_ids = [t for t in result.token_ids if t not in (151643, 151645)]
    decoded = tiny_random.model.tokenizer.decode(text_ids, skip_special_tokens=True)
    assert result.text == finish_transcript(decoded)


def test_modes_differ_only_in_padding(tiny_random):
    audio = speech("beckett.wav")
    padded, length = tiny_random.features(audio, padded=True)
    unpadded, same_length = tiny_random.features(audio, padded=False)
    assert padded.shape[-1] == 3000 and unpadded.shape[-1] == length == same_length
    torch.testing.assert_close(unpadded, padded[..., :length], atol=0, rtol=0)
    # The padded encoder lets real frames attend to 20 s of silence: different states.
    hidden_padded = tiny_random.model.encoder(padded)[:, : (length - 1) // 2 + 1]
    hidden_unpadded = tiny_random.model.encoder(unpadded)
    assert hidden_unpadded.shape == hidden_padded.shape
    assert (hidden_unpadded - hidden_padded).abs().max() > 1e-3


def test_long_audio_is_truncated_to_30_seconds_like_upstream(tiny_random):
    audio = speech("two_cities_16k.wav")
    assert len(audio) > 30 * 16000
    result = tiny_random.transcribe(audio, max_new_tokens=4)
    assert result.mel_frames == 3000 and result.num_audio_tokens == 375


def test_every_projector_and_short_clips(make_checkpoint):
    for projector in ("mosa", "moe", "qformer"):
        transcriber = ReferenceTranscriber(load_model(str(make_checkpoint(projector=projector))))
        audio = speech("beckett.wav")[: 16000 * 3]
        for padded in (True, False):
            result = transcriber.transcribe(audio, padded=padded, max_new_tokens=STEPS)
            assert result.token_ids == greedy_without_cache(transcriber, audio, padded)
    # A Q-Former window always yields 3 queries; the stacking projectors need 70 ms of audio:
    # 50 ms gives no audio token at all (upstream's formula), and still runs.
    assert transcriber.transcribe(np.zeros(800, dtype=np.float32)).num_audio_tokens == 3
    mlp = ReferenceTranscriber(load_model(str(make_checkpoint())))
    assert mlp.transcribe(np.zeros(800, dtype=np.float32)).num_audio_tokens == 0


def test_config_max_new_tokens_bounds_generation(make_checkpoint):
    transcriber = ReferenceTranscriber(load_model(str(make_checkpoint(max_new_tokens=3))))
    assert len(transcriber.transcribe(speech()).token_ids) <= 3


def test_whisper_encoder_any_length_matches_native_forward(make_checkpoint):
    model = load_model(str(make_checkpoint(encoder="whisper")))
    features = torch.randn(1, 80, 3000)
    with torch.no_grad():
        native = model.encoder.module(input_features=features).last_hidden_state
        ours = model.encoder(features)
        torch.testing.assert_close(ours, native, atol=1e-5, rtol=0)
        assert model.encoder(features[..., :600]).shape == (1, 300, 32)
    transcriber = ReferenceTranscriber(model)
    for padded in (True, False):
        audio = speech()[: 16000 * 2]
        result = transcriber.transcribe(audio, padded=padded, max_new_tokens=STEPS)
        assert result.token_ids == greedy_without_cache(transcriber, audio, padded)


@pytest.mark.parametrize(
    ("text", "want"),
    [  # cases from upstream's tests/test_truncate_repetitions.py
        ("444444", "4"),
        ("hello worldddd", "hello world"),
        ("the the the the", "the"),
        ("hello world world world world", "hello world"),
        ("i am sorry i am sorry i am sorry", "i am sorry"),
        ("hello there i am sorry i am sorry i am sorry", "hello there i am sorry"),
        ("this is fine", "this is fine"),
        ("word word", "word word"),
        ("word word word", "word"),
        ("", ""),
    ],
)
def test_truncate_repetitions(text, want):
    assert truncate_repetitions(text) == want


def test_finish_transcript_strips_think_blocks():
    assert finish_transcript(" <think>\nhmm\n</think>\n\nhello there ") == "hello there"
