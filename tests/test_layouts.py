"""Every published encoder layout and front-end config, built here as the hub stores them."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import cli_error
from tinyaudio.errors import TinyAudioError
from tinyaudio.export.cli import main as export_main
from tinyaudio.export.encoder import load_encoder
from tinyaudio.export.loader import load_model


def _relayout(source, target, prefix: str, extra: dict | None = None):
    """A copy of encoder repo ``source`` whose tensors sit under ``prefix`` instead."""
    shutil.copytree(source, target)
    tensors = load_file(str(target / "model.safetensors"))
    moved = {prefix + k.removeprefix("audio_tower."): v for k, v in tensors.items()}
    save_file({**moved, **(extra or {})}, str(target / "model.safetensors"))
    return target


def _same_weights(a, b) -> None:
    for (name, x), (_, y) in zip(a.module.state_dict().items(), b.module.state_dict().items(),
                                 strict=True):  # fmt: skip
        torch.testing.assert_close(x, y, atol=0, rtol=0, msg=name)


def test_transformers_nested_layout_loads(repos, tmp_path):
    """transformers' newer GlmAsr classes save the tower as model.audio_tower.*, beside the
    model's own LLM (which the encoder must ignore)."""
    other = {"model.language_model.embed_tokens.weight": torch.zeros(4, 4)}
    nested = _relayout(repos["glmasr"], tmp_path / "nested", "model.audio_tower.", other)
    _same_weights(load_encoder(nested), load_encoder(repos["glmasr"]))


def test_pre_transformers_layout_is_a_clear_error(repos, make_checkpoint, tmp_path, capsys):
    old = _relayout(repos["glmasr"], tmp_path / "old", "audio_encoder.whisper.")
    with pytest.raises(TinyAudioError, match=r"before its transformers port.*download .* again"):
        load_encoder(old)
    checkpoint = str(make_checkpoint())
    assert export_main(["--model", checkpoint, "--encoder-dir", str(old), "--fp32",
                        "-o", str(tmp_path / "out"), "--quiet"]) != 0  # fmt: skip
    assert "audio_encoder.whisper.*" in cli_error(capsys)
    assert not (tmp_path / "out").exists()


def _settings(extractor) -> dict:
    keys = ("feature_size", "sampling_rate", "hop_length", "n_fft", "chunk_length")
    return {key: getattr(extractor, key) for key in keys}


def test_front_end_from_processor_config(repos, tmp_path):
    """transformers 5 writes processor_config.json (the extractor nested) instead."""
    repo = shutil.copytree(repos["glmasr"], tmp_path / "processor")
    settings = json.loads((repo / "preprocessor_config.json").read_text())
    (repo / "preprocessor_config.json").unlink()
    processor = {"feature_extractor": settings, "processor_class": "GlmAsrProcessor"}
    (repo / "processor_config.json").write_text(json.dumps(processor))
    want = _settings(load_encoder(repos["glmasr"]).feature_extractor)
    assert _settings(load_encoder(repo).feature_extractor) == want


def test_front_end_derived_with_a_warning(repos, tmp_path, caplog):
    repo = shutil.copytree(repos["whisper"], tmp_path / "bare")
    (repo / "preprocessor_config.json").unlink()
    with caplog.at_level(logging.WARNING, logger="tinyaudio"):
        extractor = load_encoder(repo).feature_extractor
    assert "has no preprocessor_config.json or processor_config.json" in caplog.text
    assert _settings(extractor) == _settings(load_encoder(repos["whisper"]).feature_extractor)
    assert extractor.feature_size == 80  # the whisper repo's mel count, from its config


@pytest.mark.parametrize(("key", "value"), [("hop_length", 320), ("feature_size", 64)])
def test_front_end_the_runtime_cannot_compute_is_refused(repos, tmp_path, key, value):
    repo = shutil.copytree(repos["glmasr"], tmp_path / key)
    settings = json.loads((repo / "preprocessor_config.json").read_text())
    (repo / "preprocessor_config.json").write_text(json.dumps({**settings, key: value}))
    with pytest.raises(TinyAudioError, match=f"front end has {key} {value}"):
        load_encoder(repo)


@pytest.mark.parametrize("hidden", [1024, 2048])
def test_projector_hidden_sizes_load(make_checkpoint, hidden):
    """tiny-audio's main checkpoint uses an mlp of hidden 1024, the embedded one 2048."""
    model = load_model(str(make_checkpoint(projector_hidden_dim=hidden)), parts=())
    shapes = {tuple(p.shape) for p in model.projector.parameters()}
    assert any(hidden in shape for shape in shapes)
    assert model.encoder is None and model.language_model is None  # loaded only when asked
