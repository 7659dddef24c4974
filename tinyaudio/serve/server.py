"""`tinyaudio serve`: one process, one loaded bundle, a Wyoming and/or an HTTP listener.

Both listeners share one ModelWorker, so requests from either queue on the same model. The first
Ctrl-C or SIGTERM drains: the listeners stop accepting, requests already in line finish and get
their answers, then the process exits 0 (systemd's `systemctl stop` waits for it). A second
signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import uvicorn

from tinyaudio.errors import TinyAudioError
from tinyaudio.serve.http_app import create_app
from tinyaudio.serve.worker import ModelInfo, ModelWorker
from tinyaudio.serve.wyoming_handler import WyomingHandler

log = logging.getLogger("tinyaudio")
WYOMING_PORT = 10300  # wyoming-faster-whisper's port: Home Assistant suggests it
HTTP_PORT = 8000


@dataclass
class Limits:
    timeout: float  # seconds from a request's arrival to its answer
    max_queue: int  # requests waiting or running before new ones are refused
    max_upload: int  # bytes of one HTTP upload


def address(text: str, default_port: int, scheme: str | None = None) -> tuple[str, int]:
    """`HOST:PORT`, `HOST`, `:PORT` or (Wyoming) `tcp://HOST:PORT` → (host, port)."""
    given = text
    if scheme is not None:
        if "://" in text and not text.startswith(f"{scheme}://"):
            raise TinyAudioError(f"only {scheme}:// addresses are served, got '{given}'")
        text = text.removeprefix(f"{scheme}://")
    try:
        parts = urlsplit(f"//{text}")
        host = parts.hostname or "127.0.0.1"
        port = default_port if parts.port is None else parts.port
    except ValueError:
        raise TinyAudioError(f"not a HOST:PORT address: '{given}'") from None
    return host, port


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket, or one clear line on why not (port taken, unknown host)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise TinyAudioError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` drains both listeners together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _announce(kind: str, sock: socket.socket, scheme: str) -> None:
    host, port = sock.getsockname()[:2]
    print(f"{kind} listening on {scheme}{host}:{port}", file=sys.stderr, flush=True)


async def serve(
    worker: ModelWorker,
    model: ModelInfo,
    wyoming: tuple[str, int] | None,
    http: tuple[str, int] | None,
    limits: Limits,
    api_key: str | None,
) -> None:
    wyoming_sock = listen(*wyoming) if wyoming else None
    http_sock = listen(*http) if http else None  # both bound before either serves
    if (
        http
        and api_key is None
        and not ipaddress.ip_address(http_sock.getsockname()[0]).is_loopback
    ):
        log.warning("HTTP on %s:%d takes requests from anyone who can reach it: "
                    "set --api-key or TINYAUDIO_API_KEY", *http)  # fmt: skip
    handlers: set[WyomingHandler] = set()
    tasks = []
    wyoming_server = None
    if wyoming_sock is not None:

        async def connected(reader, writer) -> None:
            handler = WyomingHandler(reader, writer, worker, model)
            handlers.add(handler)
            try:
                await handler.run()
            finally:
                handlers.discard(handler)

        wyoming_server = await asyncio.start_server(connected, sock=wyoming_sock)
        _announce("wyoming", wyoming_sock, "tcp://")
    http_server = None
    if http_sock is not None:
        app = create_app(worker, model, api_key, limits.max_upload)
        config = uvicorn.Config(app, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=int(limits.timeout) + 1)  # fmt: skip
        http_server = _HttpServer(config)
        tasks.append(asyncio.ensure_future(http_server.serve(sockets=[http_sock])))
        _announce("http", http_sock, "http://")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, partial(_on_signal, stop, sig))
    finished = asyncio.ensure_future(stop.wait())
    await asyncio.wait([finished, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done() and task.exception() is not None:  # uvicorn failed to start
            raise TinyAudioError(f"the HTTP server stopped: {task.exception()}")

    print("draining: finishing the requests in line", file=sys.stderr, flush=True)
    if wyoming_server is not None:
        wyoming_server.close()
    if http_server is not None:
        http_server.should_exit = True
    # Requests in line, and Wyoming streams still arriving (a voice command mid-sentence),
    # get their answers; none can take longer than its audio plus the request timeout.
    deadline = loop.time() + model.max_seconds + limits.timeout
    while (worker.pending or any(h.busy for h in handlers)) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for handler in list(handlers):
        await handler.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    worker.close()
    print("stopped", file=sys.stderr, flush=True)


def _on_signal(stop: asyncio.Event, sig: int) -> None:
    if stop.is_set():  # the second Ctrl-C: no more waiting
        print("interrupted", file=sys.__stderr__, flush=True)
        os._exit(128 + sig)
    stop.set()
