"""Shared fixtures: tiny encoder/LLM repos and upstream-format checkpoints built offline.

The LLM uses Qwen3-0.6B's real tokenizer (vendored in tests/data, with its license), so prompt
ids, special ids and the 151670-row vocabulary are the real ones. Everything a test reads lives in
this repository or is made by the tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tinyaudio.registry import EncoderSpec, LLMSpec

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
QWEN3_REFERENCE = DATA / "qwen3-0.6b"
AUDIO = DATA / "audio"  # real recordings: see its README for sources and licenses

# Makes `import torch` / `import transformers` fail in a child, as on a device without them.
NO_TORCH = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def run_without_torch(module: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``module``'s main(args) in a fresh interpreter where torch cannot be imported, and
    fail the child if torch or transformers got imported anyway."""
    code = NO_TORCH + (
        f"from {module} import main\n"
        f"rc = main({args!r})\n"
        "assert not any(m.split('.')[0] in ('torch', 'transformers') for m in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)


SPOKEN_TEXT = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."


@pytest.fixture(scope="session")
def spoken_clip(tmp_path_factory) -> Path:
    """A sentence spoken by espeak-ng (a 22.05 kHz wav): speech that no test data ships.
    `make test` installs espeak-ng."""
    path = tmp_path_factory.mktemp("spoken") / "spoken.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), SPOKEN_TEXT], check=True)
    return path


def cli_error(capsys) -> str:
    """The last stderr line, which must be the error (progress may precede it); no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    return last


TINY_GLM = EncoderSpec("glmasr", 32, 2, 2, 64, 128)
TINY_WHISPER = EncoderSpec("whisper", 32, 2, 2, 64, 80)
TINY_QWEN3 = LLMSpec("qwen3", 32, 2, 4, 2, 16, 64, 151936, True)  # GQA: head_dim % 16 == 0


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Presets are built into a per-session cache, never the user's ~/.cache."""
    monkeypatch.setenv("TINYAUDIO_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def repos(tmp_path_factory):
    """Encoder and LLM repos written once per session: {"glmasr", "whisper", "llm"} → Path."""
    from tinyaudio.export.factory import write_encoder, write_llm

    root = tmp_path_factory.mktemp("repos")
    return {
        "glmasr": write_encoder(TINY_GLM, root / "glm-asr"),
        "whisper": write_encoder(TINY_WHISPER, root / "whisper"),
        "llm": write_llm(TINY_QWEN3, root / "qwen3", tokenizer_dir=QWEN3_REFERENCE),
    }


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory, repos):
    """make_checkpoint(encoder="glmasr", **recipe fields) → an upstream-format checkpoint dir."""
    from tinyaudio.export.factory import CheckpointRecipe, write_checkpoint

    cache: dict[tuple, Path] = {}

    def make(encoder: str = "glmasr", **fields) -> Path:
        key = (encoder, tuple(sorted(fields.items())))
        if key not in cache:
            directory = tmp_path_factory.mktemp("checkpoint")
            recipe = CheckpointRecipe(**fields)
            cache[key] = write_checkpoint(recipe, directory, repos[encoder], repos["llm"])
        return cache[key]

    return make


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory, make_checkpoint):
    """make_bundle(precision="fp32", encoder="glmasr", **recipe) → a bundle dir built once.

    FP32 bundles come from `tinyaudio-export --fp32`; INT8/INT4 from quantizing that FP32 bundle
    (what `tinyaudio-export --int8/--int4` runs after its FP32 stage).
    """
    from tinyaudio.export.cli import main as export_main
    from tinyaudio.quantize.pipeline import quantize_bundle

    cache: dict[tuple, Path] = {}

    def make(precision: str = "fp32", encoder: str = "glmasr", **fields) -> Path:
        key = (precision, encoder, tuple(sorted(fields.items())))
        if key in cache:
            return cache[key]
        if precision == "fp32":
            checkpoint = make_checkpoint(encoder=encoder, **fields)
            output = tmp_path_factory.mktemp("bundle") / "fp32"
            args = ["--model", str(checkpoint), "--fp32", "-o", str(output), "--quiet"]
            assert export_main(args) == 0
        else:
            source = make("fp32", encoder, **fields)
            output = source.with_name(precision)
            quantize_bundle(source, output, precision)
        cache[key] = output
        return output

    return make


@pytest.fixture(scope="session")
def demo_bundles(tmp_path_factory) -> dict[str, Path]:
    """The shipped demo model's FP32 / INT8 / INT4 bundles, exported and quantized as a user
    would (tinyaudio-export, tinyaudio-quantize): a model that really transcribes."""
    from tinyaudio.bench.bundles import build_bundles
    from tinyaudio.progress import Progress

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYAUDIO_CACHE", str(tmp_path_factory.mktemp("demo-cache")))
        return build_bundles("demo", Progress(enabled=False), genai=False)
