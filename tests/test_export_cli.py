"""The export/quantize command lines: clear errors, atomic output, torch-free quantization."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import NO_TORCH, REPO, cli_error, run_without_torch
from tinyaudio.bundle import read_manifest
from tinyaudio.export.cli import main as export_main
from tinyaudio.quantize.cli import main as quantize_main
from tinyaudio.quantize.recipes import block_sizes


def test_projector_mismatch(make_checkpoint, tmp_path, capsys):
    checkpoint = make_checkpoint(projector="mlp")
    args = ["--model", str(checkpoint), "--projector", "moe", "--fp32", "-o", str(tmp_path / "b")]
    assert export_main(args) == 2
    assert "--projector moe does not match" in cli_error(capsys)
    assert not (tmp_path / "b").exists()


def test_unknown_precision_and_projector(make_checkpoint, tmp_path, capsys):
    checkpoint = str(make_checkpoint())
    assert (
        export_main(["--model", checkpoint, "--precision", "int3", "-o", str(tmp_path / "b")]) == 2
    )
    assert "unknown precision 'int3'" in cli_error(capsys)
    with pytest.raises(SystemExit):
        export_main(["--model", checkpoint, "--projector", "linear"])
    assert "invalid choice: 'linear'" in capsys.readouterr().err


def test_unwritable_output(make_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["--model", str(make_checkpoint()), "--fp32", "-o", str(blocker / "bundle")]
    assert export_main(args) == 2
    assert "file, not a directory" in cli_error(capsys)
    assert export_main([*args[:-1], "/sys/tinyaudio-bundle"]) == 2  # read-only even for root
    assert "/sys is not writable" in cli_error(capsys)
    assert export_main([*args[:-1], str(blocker)]) == 2  # an existing file, not a bundle
    assert "already exists and is not a directory" in cli_error(capsys)


def test_missing_checkpoint(tmp_path, capsys):
    assert export_main(["--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "b")]) == 2
    assert "checkpoint directory not found" in cli_error(capsys)
    (tmp_path / "empty").mkdir()
    assert export_main(["--model", str(tmp_path / "empty"), "-o", str(tmp_path / "b")]) == 2
    assert "config.json" in cli_error(capsys)


def test_existing_output_needs_force(make_bundle, make_checkpoint, tmp_path, capsys):
    source = make_bundle("fp32")
    target = tmp_path / "int8"
    assert quantize_main([str(source), "--int8", "-o", str(target), "--quiet"]) == 0
    first = read_manifest(target)["files"]
    assert quantize_main([str(source), "--int8", "-o", str(target), "--quiet"]) == 2
    assert "already exists; pass --force" in cli_error(capsys)
    assert read_manifest(target)["files"] == first
    assert quantize_main([str(source), "--int4", "-o", str(target), "--quiet", "--force"]) == 0
    assert read_manifest(target)["precision"] == "int4"
    assert quantize_main([str(target), "--int8", "-o", str(tmp_path / "x")]) == 2
    assert "quantize starts from an FP32 one" in cli_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"]  # no leftovers


def test_quantize_runs_without_torch(make_bundle, tmp_path):
    source = make_bundle("fp32", projector="moe")
    done = run_without_torch(
        "tinyaudio.quantize.cli", [str(source), "--int4", "-o", str(tmp_path / "q")]
    )
    assert done.returncode == 0, done.stderr
    assert "gate" in done.stderr and read_manifest(tmp_path / "q")["precision"] == "int4"
    blocked = subprocess.run([sys.executable, "-c", NO_TORCH + "import torch"],
                             capture_output=True, text=True)  # fmt: skip
    assert "blocked in this test" in blocked.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_export_leaves_nothing(make_checkpoint, tmp_path, sig):
    output = tmp_path / "bundle"
    command = [sys.executable, "-m", "tinyaudio.export", "--model", str(make_checkpoint()),
               "--int8", "-o", str(output)]  # fmt: skip
    child = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in child.stderr:  # wait until the export is under way: tracing the encoder
        if "export encoder" in line:
            break
    time.sleep(1.0)
    assert any(tmp_path.iterdir()), "the export should have a work directory by now"
    child.send_signal(sig)
    rest = child.stderr.read()
    assert child.wait(timeout=60) == 128 + sig  # 130 for Ctrl-C, 143 for SIGTERM
    assert "interrupted" in rest
    assert list(tmp_path.iterdir()) == []  # no bundle, no partial directory


def test_module_entry_points():
    for module in ("tinyaudio.export", "tinyaudio.quantize"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                              text=True, cwd=REPO, env={**os.environ})  # fmt: skip
        assert done.returncode == 0 and "--int4" in done.stdout


def test_failed_gate_stops_with_a_clear_error(make_bundle, tmp_path, monkeypatch, capsys):
    """A gate no recipe can meet: every rung is tried at each default block, then one error line
    and no bundle."""
    from tinyaudio.quantize import gates

    monkeypatch.setattr(gates, "MIN_COSINE", 1.01)
    target = tmp_path / "q"
    assert quantize_main([str(make_bundle("fp32")), "--int4", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    for block in block_sizes("int4", None):
        for rung in ("int4", "int4-int8-encoder", "int4-lm-head-int8", "int4-mixed"):
            assert f"▸ gate {rung}, block {block}:" in err
    assert err.strip().splitlines()[-1].startswith("error: no int4 recipe passed the accuracy gate")
    assert list(tmp_path.iterdir()) == []
