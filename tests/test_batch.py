"""`tinyaudio transcribe` on many files: output files in every format (parsed back), worker
processes, a failing file among good ones, resume and --overwrite, the progress bar only at a
terminal. The demo model's INT8 bundle transcribes the demo clips exactly, so outputs are checked
against what each clip says."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
import soundfile as sf

from recipe.demo.data import SAMPLES, sample_path
from tests.conftest import REPO, cli_error
from tinyaudio.cli import main

TEXTS = [text for text, _ in SAMPLES]
STAMP = r"(\d\d):(\d\d):(\d\d)[,.](\d{3})"


@pytest.fixture(scope="module")
def bundle(demo_bundles):
    return demo_bundles["int8"]


@pytest.fixture
def folder(tmp_path):
    """The demo clips (their names say what they say), one per format family."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for text in TEXTS:
        shutil.copy(sample_path(REPO / "samples" / "demo", text), clips)
    return clips


def seconds(match: tuple[str, ...]) -> float:
    hours, minutes, secs, millis = map(int, match)
    return hours * 3600 + minutes * 60 + secs + millis / 1000


def test_every_output_format_parses_back(bundle, folder, tmp_path, capsys):
    """With --word-timestamps: JSON words, srt/vtt/tsv cues timed by the words (vtt with WebVTT's
    inline per-word timestamps), all parsed back."""
    out = tmp_path / "out"
    assert main(["transcribe", str(bundle), str(folder), "--output-format", "all",
                 "--output-dir", str(out), "--word-timestamps"]) == 0  # fmt: skip
    for text in TEXTS:
        stem = text.replace(" ", "-")
        assert (out / f"{stem}.txt").read_text() == text + "\n"
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["text"] == text and record["file"].endswith(f"{stem}.wav")
        (segment,) = record["segments"]
        words = segment["words"]
        assert " ".join(w["word"] for w in words) == text
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and all(w["start"] < w["end"] for w in words)
        assert segment["start"] <= words[0]["start"] and words[-1]["end"] <= segment["end"]
        assert all(0.5 < w["probability"] <= 1.0 for w in words)
        number, times, cue, blank = (out / f"{stem}.srt").read_text().split("\n")[:4]
        assert (number, cue, blank) == ("1", text, "")
        bounds = [seconds(m) for m in re.findall(STAMP, times)]
        assert bounds == [words[0]["start"], words[-1]["end"]]
        vtt = (out / f"{stem}.vtt").read_text().split("\n")
        assert vtt[0] == "WEBVTT" and vtt[1] == ""
        assert [seconds(m) for m in re.findall(STAMP, vtt[2])] == bounds
        assert re.sub(r"<[^>]*>", "", vtt[3]) == text
        assert [seconds(m) for m in re.findall(STAMP, vtt[3])] == starts[1:]
        header, row = (out / f"{stem}.tsv").read_text().splitlines()
        assert header == "start\tend\ttext"
        assert row == f"{round(bounds[0] * 1000)}\t{round(bounds[1] * 1000)}\t{text}"
    assert capsys.readouterr().out == ""  # files, not printing


def test_two_jobs_a_failing_file_resume_and_overwrite(bundle, folder, tmp_path, capsys):
    rate = 16000
    nan = np.full(rate, np.nan, np.float32)
    sf.write(folder / "broken.wav", nan, rate, subtype="FLOAT")  # decodes, fails in a worker
    (folder / "notes.txt").write_text("not audio, not picked from a folder")
    out = tmp_path / "out"
    args = ["transcribe", str(bundle), str(folder), "--jobs", "2", "--output-format", "txt",
            "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.wav" in err and "NaN" in err and "1 of 4 files failed" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t.replace(' ', '-')}.txt"
                                                           for t in TEXTS)  # fmt: skip
    assert all((out / f"{t.replace(' ', '-')}.txt").read_text() == t + "\n" for t in TEXTS)

    done = out / f"{TEXTS[0].replace(' ', '-')}.txt"
    done.write_text("edited by hand\n")  # a resumed run must not touch it
    (folder / "broken.wav").unlink()
    assert main(args) == 0
    assert "skipped 3 of 3 files" in capsys.readouterr().err
    assert done.read_text() == "edited by hand\n"
    assert main([*args, "--overwrite"]) == 0
    assert done.read_text() == TEXTS[0] + "\n"


def test_a_bad_model_or_prompt_is_one_error_with_many_jobs(bundle, folder, capsys):
    prompt = "word " * 400
    assert main(["transcribe", str(bundle), str(folder), "--jobs", "2", "--prompt", prompt]) == 2
    error = cli_error(capsys)
    assert "at most 256" in error
    assert capsys.readouterr().err.count("error:") == 0  # only the one line, already read


def test_two_inputs_writing_the_same_output_are_refused(bundle, folder, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    name = TEXTS[0].replace(" ", "-")
    shutil.copy(folder / f"{name}.wav", other / f"{name}.flac")
    code = main(["transcribe", str(bundle), str(folder), str(other), "--output-dir",
                 str(tmp_path / "out"), "--output-format", "txt"])  # fmt: skip
    assert code == 2
    assert f"would both write {tmp_path / 'out' / name}.txt" in capsys.readouterr().err


def run_cli(bundle, folder, stderr_terminal: bool) -> str:
    """The command in a child whose stderr is a terminal (a pty) or a pipe; what stderr got."""
    args = [sys.executable, "-m", "tinyaudio.cli", "transcribe", str(bundle), str(folder)]
    if not stderr_terminal:
        return subprocess.run(args, capture_output=True, text=True, cwd=REPO).stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower, cwd=REPO)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    child.wait(120)
    os.close(leader)
    return seen.decode(errors="replace")


def test_progress_bar_only_on_a_terminal(bundle, folder):
    assert "s of audio" in run_cli(bundle, folder, stderr_terminal=True)
    assert "s of audio" not in run_cli(bundle, folder, stderr_terminal=False)
