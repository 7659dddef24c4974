"""`tinyaudio serve` as its clients see it: the `wyoming` package's own client and OpenAI's
Python SDK, against a real server process on 127.0.0.1 serving the demo model's INT8 bundle, in an
interpreter where torch and transformers cannot be imported."""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest
import soundfile as sf
import soxr
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info

from recipe.demo.data import SAMPLES, sample_path
from tests.conftest import NO_TORCH, REPO
from tinyaudio.bench.serving import ServerProcess, file_events, pcm_events, replies, wyoming_request
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.transcribe import Transcriber

KEY = "test-key"
JFK = REPO / "samples" / "jfk.wav"
SAMPLE_TEXTS = [text for text, _ in SAMPLES]


def sample(text: str) -> Path:
    return sample_path(REPO / "samples" / "demo", text)


def start_server(bundle: Path, *options: str) -> ServerProcess:
    """The server as a user runs it, in an interpreter where torch cannot be imported."""
    return ServerProcess(bundle, "--threads", "1", *options, prelude=NO_TORCH, cwd=REPO)


@pytest.fixture(scope="module")
def bundle(demo_bundles) -> Path:
    return demo_bundles["int8"]


@pytest.fixture(scope="module")
def server(bundle):
    running = start_server(bundle, "--api-key", KEY, "--max-upload-mb", "1")
    yield running
    assert running.stop() == 0, "".join(running.lines)
    assert "Traceback" not in "".join(running.lines)


@pytest.fixture(scope="module")
def local(bundle) -> Transcriber:
    """The same bundle in this process: what the server must answer."""
    return Transcriber.from_bundle(bundle, threads=1)


def transcript(events: list[Event]) -> str:
    types = [e.type for e in events]
    assert types[0] == "transcript-start" and types[-2:] == ["transcript", "transcript-stop"]
    assert set(types[1:-2]) <= {"transcript-chunk"}
    streamed = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    final = events[-2].data["text"]
    assert streamed.strip().lower().startswith(final[:10].lower())  # chunks are the raw text
    return final


def test_wyoming_describe_announces_the_model(server):
    async def ask() -> Info:
        async with AsyncTcpClient("127.0.0.1", server.ports["wyoming"]) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    info = asyncio.run(ask())
    (program,) = info.asr
    assert program.supports_transcript_streaming
    (model,) = program.models
    assert model.name == "demo" and model.languages == ["en"] and "int8" in model.description


def test_wyoming_transcribes_a_real_recording_as_the_runtime_does(server, local):
    events = asyncio.run(wyoming_request(server.ports["wyoming"], file_events(JFK)))
    assert transcript(events) == local.transcribe(JFK).text


def test_wyoming_converts_44k_stereo(server):
    text = SAMPLE_TEXTS[0]
    audio = load_audio(sample(text))
    stereo = soxr.resample(audio, 16000, 44100)[:, None] * np.array([[1.0, 0.5]])
    events = asyncio.run(wyoming_request(server.ports["wyoming"], pcm_events(stereo, 44100)))
    assert transcript(events) == text


def test_wyoming_two_clients_at_once(server):
    async def both() -> list[list[Event]]:
        port = server.ports["wyoming"]
        requests = [wyoming_request(port, file_events(sample(t))) for t in SAMPLE_TEXTS[:2]]
        return await asyncio.gather(*requests)

    assert [transcript(events) for events in asyncio.run(both())] == SAMPLE_TEXTS[:2]


def test_wyoming_client_that_vanishes_leaves_the_server_serving(server):
    port = server.ports["wyoming"]
    events = file_events(sample(SAMPLE_TEXTS[1]))

    async def vanish(upto: int) -> None:
        client = AsyncTcpClient("127.0.0.1", port)
        await client.connect()
        for event in events[:upto]:
            await client.write_event(event)
        await client.disconnect()

    asyncio.run(vanish(len(events) // 2))  # mid-stream
    asyncio.run(vanish(len(events)))  # after audio-stop, before its transcript
    assert transcript(asyncio.run(wyoming_request(port, events))) == SAMPLE_TEXTS[1]
    assert server.process.poll() is None


def test_wyoming_bad_streams_get_error_events_and_the_connection_stays(server):
    async def session() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", server.ports["wyoming"]) as client:
            answers = []
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0" * 160)
            await client.write_event(chunk.event())  # before audio-start
            answers += await replies(client)
            await client.write_event(AudioStart(rate=16000, width=3, channels=1).event())
            answers += await replies(client)
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            odd = AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0\0")
            await client.write_event(odd.event())
            answers += await replies(client)
            await client.write_event(Event(type="audio-start", data={"rate": 16000}))
            answers += await replies(client)
            await client.write_event(Describe().event())
            answers.append(await client.read_event())
            return answers

    answers = asyncio.run(session())
    assert [a.type for a in answers] == ["error"] * 4 + ["info"]
    messages = [a.data["text"] for a in answers[:4]]
    assert "before audio-start" in messages[0]
    assert "3-byte samples" in messages[1]
    assert "not whole frames" in messages[2]
    assert "malformed audio-start" in messages[3]


def test_wyoming_memory_stays_flat_over_50_requests(server):
    port = server.ports["wyoming"]
    events = file_events(sample(SAMPLE_TEXTS[2]))
    for _ in range(5):  # warm-up: arenas and caches reach their working size
        asyncio.run(wyoming_request(port, events))
    before = server.rss_mb()
    for _ in range(50):
        assert transcript(asyncio.run(wyoming_request(port, events))) == SAMPLE_TEXTS[2]
    growth = server.rss_mb() / before - 1
    assert growth < 0.05, f"RSS grew {growth:.1%} over 50 requests"


def test_http_formats_through_the_openai_sdk(server, local):
    client = server.openai(KEY)
    expected = local.transcribe(JFK).text

    def ask(fmt: str):
        with JFK.open("rb") as f:
            return client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format=fmt
            )

    assert ask("json").text == expected
    assert ask("text").strip() == expected
    verbose = ask("verbose_json")
    assert verbose.text == expected and verbose.duration == pytest.approx(11.0, abs=0.1)
    assert " ".join(s.text for s in verbose.segments) == expected
    srt_cues = [c.split("\n") for c in ask("srt").strip().split("\n\n")]
    assert [c[0] for c in srt_cues] == [str(i + 1) for i in range(len(srt_cues))]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", c[1])
               for c in srt_cues)  # fmt: skip
    assert " ".join(" ".join(c[2:]) for c in srt_cues) == expected
    vtt_text = ask("vtt")
    assert vtt_text.startswith("WEBVTT\n\n")
    vtt_cues = [c.split("\n") for c in vtt_text.split("\n\n")[1:] if c]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", c[0])
               for c in vtt_cues)  # fmt: skip
    assert " ".join(" ".join(c[1:]) for c in vtt_cues) == expected
    with JFK.open("rb") as f:  # OpenAI's word timestamps
        timed = client.audio.transcriptions.create(model="whisper-1", file=f,
            response_format="verbose_json", timestamp_granularities=["word"])  # fmt: skip
    assert " ".join(w.word for w in timed.words) == expected
    starts = [w.start for w in timed.words]
    assert starts == sorted(starts) and all(w.start <= w.end <= 11.0 for w in timed.words)


def test_http_streams_server_sent_events(server):
    text = SAMPLE_TEXTS[0]
    with sample(text).open("rb") as f:
        events = list(
            server.openai(KEY).audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        )
    assert [e.type for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    assert len(events) > 2  # the words arrive one by one
    assert events[-1].type == "transcript.text.done" and events[-1].text == text
    assert "".join(e.delta for e in events[:-1]) == text


def test_http_errors_are_clear_4xx(server, tmp_path):
    client = server.openai(KEY)
    big = tmp_path / "long.wav"
    sf.write(big, np.zeros(16000 * 40, np.float32), 16000)  # 1.28 MB > 1 MB
    with pytest.raises(openai.APIStatusError) as caught, big.open("rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert caught.value.status_code == 413 and "limit of 1 MB" in caught.value.message

    broken = tmp_path / "notes.wav"
    broken.write_bytes(b"RIFF but not really audio" * 10)
    with pytest.raises(openai.BadRequestError) as caught, broken.open("rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert "cannot decode notes.wav" in caught.value.message

    with pytest.raises(openai.AuthenticationError), sample(SAMPLE_TEXTS[0]).open("rb") as f:
        server.openai(key="wrong").audio.transcriptions.create(model="whisper-1", file=f)

    with pytest.raises(openai.BadRequestError) as caught, sample(SAMPLE_TEXTS[0]).open("rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f, response_format="xml")
    assert "response_format" in caught.value.message


@pytest.fixture(scope="module")
def long_upload() -> tuple[str, bytes, float]:
    """~50 s of the demo sentences (two windows): a request that keeps the model busy ~1 s."""
    audio = np.concatenate([load_audio(sample(t)) for t in SAMPLE_TEXTS] * 8)
    data = io.BytesIO()
    sf.write(data, audio, 16000, format="WAV")
    return "long.wav", data.getvalue(), len(audio) / 16000


def wait_until_busy(running: ServerProcess) -> None:
    health = f"http://127.0.0.1:{running.ports['http']}/health"
    deadline = time.monotonic() + 30
    while json.load(urllib.request.urlopen(health))["pending"] == 0:  # until it is in line
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_sigterm_drains_the_request_in_flight(bundle, long_upload):
    running = start_server(bundle)
    answer: list = []
    asker = threading.Thread(
        target=lambda: answer.append(
            running.openai().audio.transcriptions.create(model="any", file=long_upload[:2])
        )
    )
    asker.start()
    wait_until_busy(running)
    assert running.stop() == 0
    asker.join(30)
    assert answer and answer[0].usage.seconds == pytest.approx(long_upload[2], abs=0.01)
    assert "draining" in "".join(running.lines)


def test_a_full_line_and_a_late_answer_are_refused_clearly(bundle, long_upload):
    running = start_server(bundle, "--max-queue", "1", "--timeout", "0.1")
    try:
        client = running.openai()
        with pytest.raises(openai.APIStatusError) as caught:
            client.audio.transcriptions.create(model="any", file=long_upload[:2])
        assert caught.value.status_code == 504 and "longer than 0.1 s" in caught.value.message
    finally:
        assert running.stop() == 0
    running = start_server(bundle, "--max-queue", "1")
    try:
        first = threading.Thread(
            target=running.openai().audio.transcriptions.create,
            kwargs={"model": "any", "file": long_upload[:2]},
        )
        first.start()
        wait_until_busy(running)
        with pytest.raises(openai.APIStatusError) as caught:
            running.openai().audio.transcriptions.create(model="any", file=long_upload[:2])
        assert caught.value.status_code == 503 and "busy" in caught.value.message
        first.join(60)
    finally:
        assert running.stop() == 0
