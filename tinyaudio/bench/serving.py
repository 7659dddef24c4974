"""A `tinyaudio serve` process and its clients, for the tests and benchmarks/serve.py.

The server runs as users run it (its own process, real sockets on 127.0.0.1, ports chosen by the
OS and read from what it prints); requests go through the `wyoming` package's client and the
`openai` SDK, the clients Home Assistant and OpenAI-style apps use.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import soundfile as sf
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

READY = re.compile(r"(wyoming|http) listening on \w+://[\d.]+:(\d+)")


class ServerProcess:
    """`tinyaudio serve BUNDLE` on both protocols; ``prelude`` is Python run before it (tests
    block torch there)."""

    def __init__(self, bundle: Path, *options: str, prelude: str = "", cwd: Path | None = None):
        args = ["serve", str(bundle), "--wyoming", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0",
                *options]  # fmt: skip
        code = f"import sys\n{prelude}\nfrom tinyaudio.cli import main\nsys.exit(main({args!r}))\n"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=cwd, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stderr:
                self.lines.append(line)
                if found := READY.match(line):
                    self.ports[found[1]] = int(found[2])
                    if len(self.ports) == 2:
                        ready.set()
            ready.set()  # it ended before listening: the caller sees why in ``lines``

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(300) or len(self.ports) != 2:
            self.process.kill()
            raise RuntimeError("tinyaudio serve did not start:\n" + "".join(self.lines))

    def openai(self, key: str = "none"):
        import openai

        base = f"http://127.0.0.1:{self.ports['http']}/v1"
        return openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=600)

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024

    def stop(self) -> int:
        """SIGTERM (drain), then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)


def pcm_events(audio: np.ndarray, rate: int, chunk: int = 2048) -> list[Event]:
    """Float samples [n] or [n, channels] → audio-start, 16-bit audio-chunks, audio-stop."""
    frames = audio.reshape(len(audio), -1)
    data = (np.clip(frames, -1, 1) * 32767).astype("<i2")
    channels = frames.shape[1]
    events = [AudioStart(rate=rate, width=2, channels=channels).event()]
    for i in range(0, len(data), chunk):
        payload = data[i : i + chunk].tobytes()
        events.append(AudioChunk(rate=rate, width=2, channels=channels, audio=payload).event())
    return [*events, AudioStop().event()]


def file_events(path: Path) -> list[Event]:
    audio, rate = sf.read(str(path), dtype="float32")
    return pcm_events(audio, rate)


async def replies(client: AsyncTcpClient, timeout: float = 600) -> list[Event]:
    """Events up to transcript-stop or an error."""
    received = []
    while True:
        event = await asyncio.wait_for(client.read_event(), timeout)
        if event is None:
            raise ConnectionError("the server closed the connection")
        received.append(event)
        if event.type in ("transcript-stop", "error"):
            return received


async def wyoming_request(port: int, events: list[Event]) -> list[Event]:
    """One Wyoming transcription on a new connection, as Home Assistant makes them."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe().event())
        for event in events:
            await client.write_event(event)
        return await replies(client)
