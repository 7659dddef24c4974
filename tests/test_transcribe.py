"""The torch-free Transcriber and `tinyaudio transcribe/info` against the PyTorch reference."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.conftest import AUDIO, run_without_torch
from tinyaudio.cli import main as cli_main
from tinyaudio.errors import TinyAudioError
from tinyaudio.export.loader import load_model
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.segments import windows
from tinyaudio.runtime.transcribe import Transcriber

RATE = 16000


@pytest.fixture(scope="module")
def clips(spoken_clip) -> dict[str, np.ndarray]:
    """16 kHz clips: recorded and synthetic speech, noise, silence, and one over 30 s."""
    rng = np.random.default_rng(3)
    return {
        "speech": sf.read(AUDIO / "jfk.wav", dtype="float32")[0],
        "espeak-ng": load_audio(spoken_clip),
        "noise": (0.05 * rng.standard_normal(3 * RATE)).astype(np.float32),
        "silence": np.zeros(2 * RATE, np.float32),
        "over 30 s": sf.read(AUDIO / "two_cities_16k.wav", dtype="float32")[0],
    }


@pytest.fixture(scope="module")
def pair(make_bundle, make_checkpoint):
    """(FP32 bundle, PyTorch reference) for the same tiny checkpoint."""
    return make_bundle("fp32"), ReferenceTranscriber(load_model(str(make_checkpoint())))


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "fast"])
@pytest.mark.parametrize("projector", ["mlp", "mosa", "moe", "qformer"])
def test_tokens_match_the_reference(make_bundle, make_checkpoint, clips, projector, exact):
    reference = ReferenceTranscriber(load_model(str(make_checkpoint(projector=projector))))
    bundle = make_bundle("fp32", projector=projector)
    # Upstream decodes noise and silence too: compare with the speech gate off.
    transcriber = Transcriber.from_bundle(bundle, exact=exact, speech_gate=False)
    for name, audio in clips.items():
        if name == "over 30 s" and projector != "mlp":
            continue  # windowing does not depend on the projector: one projector covers it
        result = transcriber.transcribe(audio, RATE)
        assert result.segments, name
        for segment in result.segments:
            piece = audio[int(segment.start * RATE) : int(segment.end * RATE)]
            expected = reference.transcribe(piece, padded=exact).token_ids
            got = segment.token_ids
            # The runtime stops earlier than upstream on a decode loop or its length bound.
            assert got == expected[: len(got)], (name, segment.start)
            assert len(got) == len(expected) or got[-1] not in transcriber.engine.stop_ids


def test_long_audio_is_segmented_not_truncated(clips):
    audio = clips["over 30 s"]
    # Blocks of any size give the same windows: a stream is cut as the whole array would be.
    whole = [(start, len(window)) for start, window in windows([audio])]
    blocks = (audio[i : i + 7000] for i in range(0, len(audio), 7000))
    assert [(start, len(window)) for start, window in windows(blocks)] == whole
    bounds = [(start, start + length) for start, length in whole]
    assert len(bounds) == 2 and bounds[0][0] == 0 and bounds[-1][1] == len(audio)
    assert all(end - start <= 30 * RATE for start, end in bounds)
    assert all(a[1] == b[0] for a, b in pairwise(bounds))
    assert bounds[0][1] >= 20 * RATE  # cut near the end of the first window, in a pause


def test_custom_prompt_uses_the_chat_template(pair):
    bundle, reference = pair
    transcriber = Transcriber.from_bundle(bundle)
    for instruction in ("Describe the audio.", ""):
        prefix, suffix = transcriber.prompt_ids(instruction)
        expected = reference.prompt_ids(4, instruction)[0].tolist()
        assert prefix + [transcriber.prompt["audio_token_id"]] * 4 + suffix == expected


def test_stream_yields_the_text_as_it_grows(pair, clips):
    transcriber = Transcriber.from_bundle(pair[0], exact=True)
    audio = clips["speech"]
    streamed = "".join(transcriber.stream(audio, RATE))
    tokens = transcriber.transcribe(audio, RATE).token_ids
    ids = [t for t in tokens if t not in transcriber.engine.stop_ids]
    assert streamed == transcriber.tokenizer.decode(ids) and streamed


def test_cli_transcribes_and_reports(make_bundle, capsys):
    bundle = make_bundle("int8")
    assert cli_main(["transcribe", str(bundle), str(AUDIO / "jfk.mp3"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["segments"][0]["end"] == pytest.approx(11.0, abs=0.05)
    assert record["timings"]["new_tokens"] > 0
    assert cli_main(["info", str(bundle), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "int8" in out and "quantization gate" in out and "files match" in out


def test_runtime_runs_where_torch_cannot_be_imported(make_bundle):
    args = ["transcribe", str(make_bundle("int4")), str(AUDIO / "jfk.wav")]
    done = run_without_torch("tinyaudio.cli", args)
    assert done.returncode == 0, done.stderr
    assert "jfk.wav: " in done.stdout


def test_any_rate_channels_and_sample_type(pair, clips, tmp_path):
    """8 kHz stereo int16 and 44.1 kHz float files and arrays are resampled and mixed to mono."""
    transcriber = Transcriber.from_bundle(pair[0])
    speech = clips["speech"][: 4 * RATE]
    for rate, subtype in ((8000, "PCM_16"), (44100, "FLOAT")):
        path = tmp_path / ("clip.flac" if subtype == "PCM_16" else "clip.wav")
        resampled = soxr.resample(speech, RATE, rate)
        channels = np.stack([resampled, 0.5 * resampled], axis=1) if rate == 8000 else resampled
        sf.write(path, channels, rate, subtype=subtype)
        result = transcriber.transcribe(path)
        assert result.segments[-1].end == pytest.approx(4.0, abs=0.01), rate
        assert result.token_ids
    as_int16 = (speech * 32767).astype(np.int16)
    from_ints = transcriber.transcribe(as_int16, RATE).token_ids
    assert from_ints == transcriber.transcribe(speech, RATE).token_ids


def test_array_input_errors(pair):
    transcriber = Transcriber.from_bundle(pair[0])
    cases = {
        "pass sample_rate": (np.zeros(RATE, np.float32), None),
        "or \\[samples, channels\\]": (np.zeros((2, 2, 2), np.float32), RATE),
        "int or float": (np.zeros(RATE, dtype=bool), RATE),
        "invalid sample rate": (np.zeros(RATE, np.float32), 0),
        "the audio is empty": (np.zeros(0, np.float32), RATE),
    }
    for message, (audio, rate) in cases.items():
        with pytest.raises(TinyAudioError, match=message):
            transcriber.transcribe(audio, rate)


def test_unavailable_provider_falls_back_to_cpu(make_bundle, capsys):
    import onnxruntime as ort

    from tinyaudio.runtime.sessions import PROVIDER_ALIASES

    available = ort.get_available_providers()
    missing = next((a for a, p in PROVIDER_ALIASES.items() if p not in available), None)
    if missing is None:
        pytest.skip("every known provider is available in this onnxruntime build")
    args = ["transcribe", str(make_bundle("int8")), str(AUDIO / "jfk.wav"), "--provider", missing]
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    assert "jfk.wav: " in captured.out
    warning = captured.err.strip().splitlines()
    assert (
        len(warning) == 1 and warning[0].startswith("warning: ") and "running on CPU" in warning[0]
    )


def test_an_hour_of_audio_runs_in_bounded_memory(make_bundle, tmp_path):
    """Peak RSS for 60 min equals that for 3 min: the file is never held whole (230 MB here)."""
    speech = sf.read(AUDIO / "jfk.wav", dtype="int16")[0]
    peaks = {}
    for minutes in (3, 60):
        path = tmp_path / f"{minutes}min.wav"
        with sf.SoundFile(path, "w", RATE, 1, "PCM_16") as f:
            for _ in range(minutes * 60 * RATE // len(speech) + 1):
                f.write(speech)
        code = (
            "import resource, sys\n"
            "from tinyaudio.cli import main\n"
            "assert main(sys.argv[1:]) == 0\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        )
        args = ["transcribe", make_bundle("int8"), path, "--json"]
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["segments"][-1]["end"] >= minutes * 60
        assert all(s["end"] - s["start"] <= 30 for s in record["segments"])
        peaks[minutes] = int(done.stderr.split()[-1]) / 1024
    assert peaks[60] - peaks[3] < 32, peaks


def test_the_prompt_prefix_is_computed_once(pair, clips):
    transcriber = Transcriber.from_bundle(pair[0])
    engine, prefix = transcriber.engine, transcriber.prompt["prefix_ids"]
    prefilled = []
    forward = engine.decoder.forward
    engine.decoder.forward = lambda embeds, cache: (
        prefilled.append(cache.length) or forward(embeds, cache)
    )
    for _ in range(2):
        transcriber.transcribe(clips["speech"], RATE)
    # One prefix-only run (from position 0), then every prompt starts after the cached prefix.
    starts = [p for p in prefilled if p <= len(prefix)]
    assert starts == [0, len(prefix), len(prefix)]


def test_device_resident_decoding_transcribes_the_same(pair, clips):
    """What a CUDA/TensorRT provider switches on (runtime/decoder.py), run with CPU OrtValues."""
    from tinyaudio.runtime.decoder import Decoder

    plain = Transcriber.from_bundle(pair[0])
    device = Transcriber.from_bundle(pair[0])
    engine = device.engine
    engine.decoder = Decoder(engine.decoder.session, engine.manifest["dims"], device="cpu")
    for name in ("speech", "espeak-ng", "over 30 s"):
        expected = plain.transcribe(clips[name], RATE).token_ids
        assert device.transcribe(clips[name], RATE).token_ids == expected, name


def test_vad_windows_skip_silence_and_noise(demo_bundles):
    """--vad: one window per sentence, the 8 s of silence and noise between them never decoded,
    the progress told about every second, the sentences transcribed as alone."""
    from recipe.demo.data import SAMPLES, sample_path
    from tests.conftest import REPO

    transcriber = Transcriber.from_bundle(demo_bundles["int8"], threads=2)
    texts = [text for text, _ in SAMPLES[:2]]
    first, second = (sf.read(sample_path(REPO / "samples/demo", t), dtype="float32")[0]
                     for t in texts)  # fmt: skip
    noise = np.random.default_rng(0).standard_normal(4 * RATE).astype(np.float32) * 3e-3
    audio = np.concatenate([first, np.zeros(4 * RATE, np.float32), noise, second])
    told: list[float] = []
    result = transcriber.transcribe(audio, RATE, vad=True, on_window=told.append)
    assert [s.text for s in result.segments] == texts
    gap = (len(first) / RATE, len(first) / RATE + 8.0)
    assert result.segments[0].end <= gap[0] + 0.3 and result.segments[1].start >= gap[1] - 0.3
    assert sum(told) == pytest.approx(len(audio) / RATE, abs=1e-3)
    assert result.timings["audio_seconds"] == pytest.approx(len(audio) / RATE, abs=1e-3)
