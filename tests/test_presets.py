"""Random presets are built offline in upstream format and loaded like downloaded checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyaudio.export import presets
from tinyaudio.export.loader import load_model, resolve_checkpoint
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.registry import load_registry


def test_tiny_random_is_an_upstream_checkpoint_with_qwen3_specials():
    checkpoint = resolve_checkpoint("tiny-random")
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == "asr_model" and config["projector_type"] == "mlp"
    assert config["vocab_size"] == 151670
    model = load_model("tiny-random")
    vocab = model.tokenizer.get_vocab()
    for token, token_id in [("<|endoftext|>", 151643), ("<|im_start|>", 151644),
                            ("<|im_end|>", 151645), ("<think>", 151667), ("</think>", 151668),
                            ("<audio>", 151669)]:  # fmt: skip
        assert vocab[token] == token_id
    ids = ReferenceTranscriber(model).prompt_ids(5)[0].tolist()
    assert ids[:3] == [151644, vocab["user"], 198] and ids[3:8] == [151669] * 5
    assert ids[-4:] == [151667, ids[-1], 151668, ids[-1]]  # <think>\n\n</think>\n\n
    # Qwen3 splits " Transcribe" in two (N + 18 ids); this small BPE keeps it whole.
    assert len(ids) == 5 + 17


@pytest.mark.parametrize("projector", ["mosa", "moe", "qformer"])
def test_tiny_random_takes_any_projector(projector):
    model = load_model("tiny-random", projector=projector)
    assert model.projector_type == projector


def test_failed_build_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYAUDIO_CACHE", str(tmp_path))

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(presets, "write_checkpoint", explode)
    entry = load_registry().preset("tiny-random")
    with pytest.raises(RuntimeError):
        presets.materialize_preset(entry, "moe")
    assert list((tmp_path / "presets").iterdir()) == []


def test_real_size_preset_builds_offline_and_runs():
    """635 M GLM-ASR encoder + mlp (hidden 2048) + Qwen3-0.6B: ~45 s and ~6.5 GB here."""
    model = load_model("glmasr-qwen3-0.6b-random")
    encoder_params = sum(p.numel() for p in model.encoder.module.parameters())
    assert 630e6 < encoder_params < 640e6
    lm = model.language_model.config
    assert (lm.hidden_size, lm.num_hidden_layers, lm.num_attention_heads) == (1024, 28, 16)
    assert model.language_model.get_input_embeddings().weight.shape == (151670, 1024)
    assert model.projector.describe() == "mlp, hidden 2048, no bias, norm, norm_2"
    result = ReferenceTranscriber(model).transcribe(
        np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1,
        padded=False,
        max_new_tokens=2,
    )
    assert result.num_audio_tokens == 12 and len(result.token_ids) == 2
