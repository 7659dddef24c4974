"""One model, many clients: requests wait in line for a single thread that owns the Transcriber.

A Transcriber is not thread-safe and a small device has one model's worth of memory, so every
request (Wyoming or HTTP) runs on the same worker thread in arrival order. The line is bounded
(``max_queue``): beyond it a request is refused at once instead of holding its audio in memory.
Each request has a deadline counted from its arrival; the decoder checks it (and whether the client
is still there) at every token, so a timed-out or abandoned request frees the model within a token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.transcribe import Transcriber, Transcription


@dataclass
class ModelInfo:
    name: str  # what clients see and may ask for
    description: str
    languages: list[str]
    max_seconds: float  # the longest stream one request may send


class BusyError(TinyAudioError):
    """The line is full: the client should retry later (HTTP 503)."""


class RequestTimeoutError(TinyAudioError):
    """The request's deadline passed while it waited or decoded (HTTP 504)."""


class _AbandonedError(Exception):
    """The client went away: stop decoding its request."""


class ModelWorker:
    def __init__(self, transcriber: Transcriber, timeout: float, max_queue: int) -> None:
        self.transcriber = transcriber
        self.timeout = timeout
        self.max_queue = max_queue
        self.pending = 0  # requests waiting or running
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tinyaudio-model")

    def check_capacity(self) -> None:
        if self.pending >= self.max_queue:
            raise BusyError(f"the server is busy ({self.pending} requests in line); retry later")

    async def transcribe(
        self,
        audio: np.ndarray | Path,
        sample_rate: int | None = None,
        prompt: str | None = None,
        on_text: Callable[[str], None] | None = None,
        word_timestamps: bool = False,
    ) -> Transcription:
        """Run one request on the model thread; ``on_text`` is called there, as text arrives."""
        self.check_capacity()
        deadline = time.monotonic() + self.timeout
        abandoned = threading.Event()

        def check(_token: int | None = None) -> None:
            if abandoned.is_set():
                raise _AbandonedError
            if time.monotonic() > deadline:
                raise RequestTimeoutError(f"the request took longer than {self.timeout:g} s")

        def run() -> Transcription:
            check()
            return self.transcriber.transcribe(
                audio, sample_rate, prompt, on_token=check, on_text=on_text,
                word_timestamps=word_timestamps,
            )  # fmt: skip

        loop = asyncio.get_running_loop()
        job = self._executor.submit(run)
        self.pending += 1  # until the model thread is done with it, even if its client left
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._finished))
        try:
            return await asyncio.wrap_future(job)
        except BaseException:
            abandoned.set()  # cancelled (client gone) or failed: never decode on for nobody
            raise

    def _finished(self) -> None:
        self.pending -= 1

    async def stream(
        self, audio: np.ndarray | Path, sample_rate: int | None = None, prompt: str | None = None
    ) -> AsyncIterator[str | Transcription]:
        """Text pieces as they are decoded, then the finished Transcription."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str] = asyncio.Queue()

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        job = asyncio.ensure_future(self.transcribe(audio, sample_rate, prompt, on_text))
        getter: asyncio.Future | None = None
        try:
            while not job.done() or not pieces.empty():
                getter = asyncio.ensure_future(pieces.get())
                await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            yield job.result()
        finally:  # the consumer stopped early: the model thread stops at its next token
            job.cancel()
            if getter is not None:
                getter.cancel()

    def close(self) -> None:
        """Wait for the running request, drop the rest."""
        self._executor.shutdown(wait=True, cancel_futures=True)
