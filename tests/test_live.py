"""Live transcription: blocks through the input stream's own callback, VAD segmentation against
known speech regions, partials, file replay, Ctrl-C, and real PortAudio without a microphone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.conftest import REPO, cli_error
from tests.scenes import RATE, scene
from tinyaudio.cli import main as cli_main
from tinyaudio.live.capture import Capture
from tinyaudio.live.session import LiveTranscriber
from tinyaudio.live.vad import Segmenter
from tinyaudio.runtime.speech import SpeechDetector
from tinyaudio.runtime.transcribe import Transcriber

TEXTS = [
    "Good morning, the train to the city leaves at nine.",
    "Please send me the report before the meeting on Friday.",
    "Take an umbrella, it will rain later today.",
]


@pytest.fixture(scope="module")
def noisy_scene():
    return scene(TEXTS, gap=2.5, noise=0.01, seed=4)


@pytest.fixture(scope="module")
def transcriber(make_bundle):
    return Transcriber.from_bundle(make_bundle("int8"))


def feed_like_a_microphone(
    capture: Capture, audio: np.ndarray, rate: int, speed: float = 4.0
) -> threading.Thread:
    """Push 100 ms stereo blocks at ``rate`` through ``capture.callback`` from another thread,
    as PortAudio does, ``speed`` times faster than real time."""
    stereo = np.stack([audio, 0.5 * audio], axis=1)
    size = rate // 10
    capture.sample_rate = rate

    def play() -> None:
        for start in range(0, len(stereo), size):
            block = stereo[start : start + size]
            capture.callback(block, len(block), None, None)
            time.sleep(0.1 / speed)
        capture.blocks.put(None)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    return player


def test_utterances_partials_and_finals(transcriber, noisy_scene):
    audio, regions = noisy_scene
    rate = 48000
    captured = soxr.resample(audio, RATE, rate)
    capture = Capture()
    player = feed_like_a_microphone(capture, captured, rate)
    live = LiveTranscriber(transcriber, Segmenter(SpeechDetector()), partial_interval=0.5)
    events = list(live.run(capture))
    player.join()
    finals = [e for e in events if e.kind == "final"]
    assert len(finals) == len(regions)
    for event, (start, end) in zip(finals, regions, strict=True):
        assert abs(event.start - start) <= 0.3 and abs(event.end - end) <= 0.3, (event, start)
    # Partials come while each utterance grows, before its final, at most every 0.5 s of audio
    # (fewer when a decode is still running as new audio arrives; one the speaker's pause at a
    # comma interrupts is dropped, and counted).
    for event in finals:
        partials = [e for e in events if e.kind == "partial" and e.start == event.start]
        assert partials, event
        ends = [p.end for p in partials]
        assert ends == sorted(ends) and all(np.diff(ends) >= 0.5 - 1e-6)
        assert events.index(partials[-1]) < events.index(event)
    shown = sum(e.kind == "partial" for e in events)
    assert shown + live.partials_dropped >= 2 * len(finals)
    # Finals are decoded during the end-of-speech wait when the decoder keeps up (it does here).
    assert live.finals_decoded_ahead >= 1
    # A final is what offline transcription of the same utterance gives.
    mono = np.stack([captured, 0.5 * captured], axis=1).mean(axis=1).astype(np.float32)
    segmenter = Segmenter(SpeechDetector())
    offline = [*segmenter.feed(soxr.resample(mono, rate, RATE)), segmenter.flush()]
    texts = [transcriber.transcribe(u.audio, RATE).text for u in offline if u is not None]
    assert [e.text for e in finals] == texts


def test_the_utterance_pending_in_a_pause_is_the_final_one(noisy_scene):
    """What the live loop decodes ahead during a pause is exactly the utterance the pause ends."""
    audio, regions = noisy_scene
    segmenter = Segmenter(SpeechDetector())
    finals, pending_before = [], []
    last_pending = None
    for block in np.array_split(audio, len(audio) // (RATE // 10)):
        done = segmenter.feed(block)
        finals += done
        pending_before += [last_pending] * len(done)
        last_pending = segmenter.pending()
    assert len(finals) == len(regions)
    for final, pending in zip(finals, pending_before, strict=True):
        assert pending is not None
        assert (pending.start, pending.end) == (final.start, final.end)
        np.testing.assert_array_equal(pending.audio, final.audio)


def test_a_partial_gives_way_when_the_speaker_pauses_or_stops(transcriber, noisy_scene):
    """What arrives while a partial decodes goes through the VAD between its tokens: more speech
    lets the partial go on; a pause as long as the utterance's padding, or its end, stops it,
    and its final (what offline transcription gives) follows without waiting for more audio."""
    audio, regions = noisy_scene
    (start, end), size = regions[0], RATE // 10
    at = lambda seconds: int(seconds * RATE) // size * size  # noqa: E731
    live = LiveTranscriber(transcriber, Segmenter(SpeechDetector()), partial_interval=0.5)
    capture = Capture()
    capture.sample_rate = RATE

    def arrive(begin: float, until: float) -> None:
        for offset in range(at(begin), at(until), size):
            capture.blocks.put(audio[offset : offset + size, None])

    arrive(0.0, (start + end) / 2)  # the partial starts mid-utterance
    assert not live.superseded(capture) and capture.blocks.empty()
    arrive((start + end) / 2, end - 0.3)  # still speaking
    assert not live.superseded(capture)
    arrive(end - 0.3, end + 0.5)  # speech ends: a pause the utterance's padding long stops it
    assert live.superseded(capture)
    arrive(end + 0.5, end + 1.0)  # the end of speech is confirmed
    assert live.superseded(capture) and capture.blocks.empty()
    capture.blocks.put(None)
    events = list(live.run(capture))
    offline = Segmenter(SpeechDetector()).feed(audio[: at(end + 1.0)])
    assert [(e.kind, e.start, e.end, e.text) for e in events] == [
        ("final", round(u.start, 3), round(u.end, 3), transcriber.transcribe(u.audio, RATE).text)
        for u in offline
    ]
    assert len(offline) == 1 and abs(offline[0].end - end) <= 0.3


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_no_text_without_speech(transcriber, noise):
    audio = noise * np.random.default_rng(1).standard_normal(8 * RATE).astype(np.float32)
    capture = Capture()
    player = feed_like_a_microphone(capture, audio, RATE)
    events = list(LiveTranscriber(transcriber, Segmenter(SpeechDetector())).run(capture))
    player.join()
    assert events == []


@pytest.fixture(scope="module")
def thirty_seconds(tmp_path_factory):
    """A 30 s, 44.1 kHz stereo file with three utterances, and their regions."""
    audio, regions = scene(TEXTS, gap=2.5, noise=0.005, seed=5)
    audio = np.pad(audio, (0, 30 * RATE - len(audio)))
    path = tmp_path_factory.mktemp("live") / "three.wav"
    resampled = soxr.resample(audio, RATE, 44100)
    sf.write(path, np.stack([resampled, resampled], axis=1), 44100)
    return path, regions


def test_replay_prints_three_finals_in_order(make_bundle, thirty_seconds, capsys):
    path, regions = thirty_seconds
    assert cli_main(["live", str(make_bundle("int8")), "--input", str(path), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finals = [e for e in events if e["kind"] == "final"]
    assert [round(e["start"]) for e in finals] == [round(start) for start, _ in regions]
    assert all(e["text"] for e in finals)
    assert any(e["kind"] == "partial" for e in events)


def test_ctrl_c_flushes_the_last_utterance(make_bundle, thirty_seconds):
    path, regions = thirty_seconds
    command = [sys.executable, "-m", "tinyaudio.cli", "live", str(make_bundle("int8")),
               "--input", str(path), "--json"]  # fmt: skip
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    finals = []
    for line in child.stdout:
        event = json.loads(line)
        if event["kind"] == "final":
            finals.append(event)
            if len(finals) == 1:
                time.sleep(regions[1][0] + 1.0 - regions[0][1])  # into the second utterance
                child.send_signal(signal.SIGINT)
    assert child.wait(timeout=60) == 0
    assert len(finals) == 2 and finals[1]["start"] == pytest.approx(regions[1][0], abs=0.3)
    assert finals[1]["end"] < regions[1][1]  # cut where Ctrl-C came, and still transcribed


def test_no_microphone_is_a_clear_error(make_bundle, capsys):
    """Real PortAudio (libportaudio2 from `make`) on a machine without audio hardware."""
    assert cli_main(["live", "--list-devices"]) == 0
    assert "no audio input devices" in capsys.readouterr().out
    assert cli_main(["live", str(make_bundle("int8"))]) == 2
    assert "no audio input device found" in cli_error(capsys)
    assert cli_main(["live"]) == 2
    assert "needs a BUNDLE" in cli_error(capsys)
