"""models.toml: what ships is valid, and every kind of mistake names the entry and the field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tinyaudio.errors import TinyAudioError
from tinyaudio.registry import load_registry

PRESET = """
[defaults]
model = "p"
[preset.p]
description = "x"
projector = "mlp"
projector_hidden_dim = 8
seed = 0
encoder = { kind = "glmasr", hidden_size = 8, num_layers = 1, num_heads = 2, intermediate_size = 8, num_mel_bins = 128 }
llm = "L"
[llm.L]
family = "qwen3"
hidden_size = 8
num_layers = 1
num_heads = 2
num_kv_heads = 1
head_dim = 4
intermediate_size = 8
vocab_size = 100
tie_word_embeddings = true
"""  # noqa: E501


def test_shipped_registry_is_complete():
    registry = load_registry(REPO / "models.toml")
    assert {"tiny-random", "glmasr-qwen3-0.6b-random"} <= set(registry.presets)
    repos = {entry.repo for entry in registry.checkpoints.values()}
    assert {"mazesmazes/tiny-audio", "mazesmazes/tiny-audio-embedded"} <= repos
    assert {e.projector for e in registry.checkpoints.values()} == {"mlp", "mosa", "moe", "qformer"}
    assert registry.encoders["zai-org/GLM-ASR-Nano-2512"].kind == "glmasr"
    assert registry.encoders["openai/whisper-large-v3-turbo"].kind == "whisper"
    assert {"Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen2.5-0.5B",
            "meta-llama/Llama-3.2-1B"} <= set(registry.llms)  # fmt: skip
    real = registry.preset("glmasr-qwen3-0.6b-random")
    assert (real.encoder.hidden_size, real.encoder.num_layers) == (1280, 32)
    assert (real.llm.hidden_size, real.llm.num_layers, real.llm.vocab_size) == (1024, 28, 151936)
    assert registry.checkpoint_for_projector("qformer").repo == "mazesmazes/tiny-audio-qformer"
    # The shipped demo model is the default, found beside models.toml ("./models/demo").
    assert registry.default_model == "demo"
    assert registry.checkpoint("demo").repo == str(REPO / "models" / "demo")
    # What the CLIs load: --model as given, else the default, else the projector's checkpoint.
    assert registry.choose(None, None) == registry.choose(None, "mlp") == "demo"
    assert registry.choose(None, "moe") == "tiny-audio-moe"
    assert registry.choose("tiny-random", "moe") == "tiny-random"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("seed = 0\n", ""), r"\[preset.p\] is missing field 'seed'"),
        (lambda t: t.replace("head_dim = 4", 'head_dim = "4"'),
         r"\[llm.L\] field 'head_dim' must be int, got str '4'"),
        (lambda t: t.replace("num_layers = 1, num_heads", "num_layers = true, num_heads"),
         r"\[preset.p.encoder\] field 'num_layers' must be int, got bool"),
        (lambda t: t.replace('projector = "mlp"', 'projector = "conv"'),
         r"\[preset.p\] field 'projector' is 'conv'"),
        (lambda t: t.replace('llm = "L"', 'llm = "M"'), r"field 'llm' names unknown llm 'M'"),
        (lambda t: t.replace("seed = 0", "seed = 0\ncolour = 1"), r"unknown field 'colour'"),
        (lambda t: t.replace('model = "p"', 'model = "q"'), r"names unknown model 'q'"),
        (lambda t: t + "\n[extras]\n", r"unknown section \[extras\]"),
        (lambda t: t + "\n[[[", r"not valid TOML"),
    ],
)  # fmt: skip
def test_bad_entries_name_entry_and_field(tmp_path, edit, message):
    path = tmp_path / "models.toml"
    path.write_text(edit(PRESET))
    with pytest.raises(TinyAudioError, match=message):
        load_registry(path)


def test_unknown_names(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(PRESET)
    registry = load_registry(path)
    with pytest.raises(TinyAudioError, match=r"unknown preset 'x' \(known: p"):
        registry.preset("x")
    with pytest.raises(TinyAudioError, match="unknown projector type 'conv'"):
        registry.checkpoint_for_projector("conv")


def test_models_cli_lists_registry_and_fails_cleanly(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "tinyaudio.cli", "models"],
                        capture_output=True, text=True, check=True)  # fmt: skip
    assert "glmasr-qwen3-0.6b-random" in ok.stdout and "mazesmazes/tiny-audio-qformer" in ok.stdout
    bad = tmp_path / "models.toml"
    bad.write_text(PRESET.replace("seed = 0\n", ""))
    result = subprocess.run(
        [sys.executable, "-m", "tinyaudio.cli", "models", "--registry", str(bad)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: models.toml: [preset.p] is missing field 'seed'"
