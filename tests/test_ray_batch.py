"""`tinyaudio transcribe --ray`: the batch work on a real local Ray cluster (`ray start --head`
with two CPUs, as on a head node): the same transcripts as the local path, a corrupt file named
and the rest done, and an actor killed in the middle of a file restarted and its work retried."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recipe.demo.data import SAMPLES, sample_path
from tests.conftest import REPO
from tinyaudio.runtime.transcribe import Transcriber

BIN = Path(sys.executable).parent
TEXTS = [text for text, _ in SAMPLES]


@pytest.fixture(scope="module")
def cluster():
    """The address of a two-CPU Ray cluster on 127.0.0.1, stopped afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    start = [str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
             "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--include-dashboard=false",
             "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def transcribe(bundle: Path, inputs: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [str(BIN / "tinyaudio"), "transcribe", str(bundle), str(inputs), "--output-format",
               "json", "--output-dir", str(out), *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def texts(out: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["text"] for p in sorted(out.glob("*.json"))}


def test_same_transcripts_as_local_and_a_corrupt_file_reported(cluster, demo_bundles, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for text in TEXTS:
        shutil.copy(sample_path(REPO / "samples" / "demo", text), clips)
    (clips / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt junk")
    bundle = demo_bundles["int8"]
    local = transcribe(bundle, clips, tmp_path / "local")
    local.wait(timeout=300)
    ray = transcribe(bundle, clips, tmp_path / "ray", "--ray", cluster, "--jobs", "2",
                     "--threads", "1")  # fmt: skip
    _, err = ray.communicate(timeout=300)
    assert ray.returncode == local.returncode == 2
    assert "broken.wav" in err and "Traceback" not in err
    assert texts(tmp_path / "ray") == texts(tmp_path / "local")
    assert sorted(texts(tmp_path / "ray").values()) == sorted(TEXTS)


def _actor_busy() -> int | None:
    """The pid of a Ray actor process in the middle of a file (Ray titles it by its task)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::_Worker.transcribe"):
                return int(entry.name)
    return None


def test_an_actor_killed_mid_file_is_restarted_and_retried(cluster, demo_bundles, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    # 20 s of quiet after each sentence: Silero scans it (--vad), so each file takes a while and
    # the kill lands in the middle of one
    quiet = np.random.default_rng(0).standard_normal(16000 * 20).astype(np.float32) * 1e-3
    for index in range(16):
        text = TEXTS[index % len(TEXTS)]
        audio, rate = sf.read(sample_path(REPO / "samples" / "demo", text), dtype="float32")
        sf.write(clips / f"{index:02d}-{text.replace(' ', '-')}.wav",
                 np.concatenate([audio, quiet]), rate)  # fmt: skip
    run = transcribe(demo_bundles["int8"], clips, tmp_path / "out", "--ray", cluster, "--jobs",
                     "2", "--threads", "1", "--vad")  # fmt: skip
    killed, deadline = None, time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and run.poll() is None:
        if len(list((tmp_path / "out").glob("*.json"))) >= 1 and (pid := _actor_busy()):
            os.kill(pid, signal.SIGKILL)
            killed = pid
        time.sleep(0.01)
    _, err = run.communicate(timeout=300)
    assert killed is not None, "the run ended before an actor could be killed"
    assert run.returncode == 0, err
    done = texts(tmp_path / "out")
    assert len(done) == 16
    local = Transcriber.from_bundle(demo_bundles["int8"], threads=1)  # what each clip gives
    firsts = sorted(clips.glob("*.wav"))[: len(TEXTS)]  # one file per distinct clip
    expected = {p.stem[3:]: local.transcribe(p, vad=True).text for p in firsts}
    for stem, text in done.items():
        assert text == expected[stem[3:]], stem
