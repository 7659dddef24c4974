"""OpenAI's `POST /v1/audio/transcriptions` and `GET /health`, as a Starlette app.

Clients written for OpenAI's API (its SDKs, and the many apps built on them) work unchanged with
``base_url`` pointed here. Fields: `file` (any format libsndfile reads), `model` (any name: there
is one model), `prompt` (replaces the model's instruction, as `tinyaudio transcribe --prompt`),
`response_format` (json, text, srt, vtt, verbose_json), `timestamp_granularities[]=word` (with
verbose_json: a `words` list with start and end, from the decoder's attention), `stream`
(server-sent events: `transcript.text.delta` as tokens arrive, then `transcript.text.done`).
srt and vtt cues are cut at pauses whenever the bundle can time words. Errors use OpenAI's JSON
error shape with a 4xx/5xx status, so the SDKs raise their usual exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.audio import probe_audio
from tinyaudio.runtime.subtitles import srt, vtt
from tinyaudio.runtime.transcribe import Transcription
from tinyaudio.serve.worker import BusyError, ModelInfo, ModelWorker, RequestTimeoutError

log = logging.getLogger("tinyaudio")
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
DISCONNECT_POLL = 0.25  # seconds between checks that the client is still there
STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "not_found_error",
    413: "invalid_request_error",
}  # fmt: skip (5xx: server_error)


def error(status: int, message: str, code: str | None = None) -> JSONResponse:
    body = {"message": message, "type": STATUS.get(status, "server_error"), "param": None,
            "code": code}  # fmt: skip
    return JSONResponse({"error": body}, status_code=status)


class UploadLimit:
    """Refuses a request body over ``limit`` bytes with 413: at once when Content-Length says
    so, otherwise as soon as the body grows past it (chunked uploads)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the upload is larger than the server's limit of {self.limit / 1e6:g} MB"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error(413, self._message(), "upload_too_large")(scope, receive, send)


def create_app(
    worker: ModelWorker, model: ModelInfo, api_key: str | None, max_upload: int
) -> ASGIApp:
    timed = bool(worker.transcriber.engine.manifest.get("alignment"))  # can time words

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model.name, "pending": worker.pending})

    async def transcriptions(request: Request) -> Response:
        try:
            return await transcribe_upload(request)
        except ClientDisconnect:  # gone during the upload or the decode: nobody to answer
            return Response(status_code=499)

    async def transcribe_upload(request: Request) -> Response:
        if api_key is not None and not _authorized(request, api_key):
            return error(401, "incorrect or missing API key", "invalid_api_key")
        form = await request.form(max_files=1, max_fields=16)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return error(400, "the request has no audio 'file' field", "missing_file")
            response_format = str(form.get("response_format") or "json")
            if response_format not in FORMATS:
                known = ", ".join(FORMATS)
                return error(400, f"response_format must be one of {known}", "bad_format")
            stream = str(form.get("stream") or "false").lower() == "true"
            if stream and response_format not in ("json", "text"):
                return error(400, "stream=true needs response_format json or text", "bad_format")
            prompt = form.get("prompt")
            prompt = str(prompt) if prompt else None
            granularities = set(form.getlist("timestamp_granularities[]"))
            if "word" in granularities and response_format != "verbose_json":
                return error(400, "word timestamps need response_format verbose_json",
                             "bad_format")  # fmt: skip
            if "word" in granularities and not timed:
                return error(400, "this model's bundle has no word alignment (re-export it)",
                             "no_word_timestamps")  # fmt: skip
            # Subtitles are cut at pauses whenever the bundle can time words.
            words = "word" in granularities or (timed and response_format in ("srt", "vtt"))
            folder = Path(tempfile.mkdtemp(prefix="tinyaudio-upload-"))
            path, streaming = folder / "audio", False
            try:
                with path.open("wb") as saved:
                    await run_in_threadpool(shutil.copyfileobj, upload.file, saved)
                info = probe_audio(path)
                if info.frames > model.max_seconds * info.samplerate:
                    seconds = info.frames / info.samplerate
                    raise TinyAudioError(
                        f"the audio is {seconds:.0f} s long; this server takes at most "
                        f"{model.max_seconds:g} s (--max-seconds)"
                    )
                if stream:
                    worker.check_capacity()
                    streaming = True  # the stream removes the folder when it ends
                    return EventStream(worker, folder, path, prompt)
                work = worker.transcribe(path, prompt=prompt, word_timestamps=words)
                result = await _while_connected(request, work)
            except TinyAudioError as exc:
                return _failure(exc, str(path), upload.filename or "the upload")
            finally:
                if not streaming:
                    shutil.rmtree(folder, ignore_errors=True)
        finally:
            await form.close()
        return _render(result, response_format, "word" in granularities)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, str(exc.detail))

    async def internal(request: Request, exc: Exception) -> Response:  # uvicorn logs it too
        return error(500, f"internal error: {type(exc).__name__}: {exc}", "internal_error")

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal},
    )
    return UploadLimit(app, max_upload)


def _authorized(request: Request, api_key: str) -> bool:
    given = request.headers.get("authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode())


def _failure(exc: TinyAudioError, path: str, name: str) -> JSONResponse:
    message = str(exc).replace(path, name)  # the client knows its file by its own name
    if isinstance(exc, BusyError):
        return error(503, message, "busy")
    if isinstance(exc, RequestTimeoutError):
        return error(504, message, "timeout")
    return error(400, message, "bad_audio")


def _render(result: Transcription, response_format: str, words: bool) -> Response:
    if response_format == "text":
        return PlainTextResponse(result.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(srt(result.segments))
    if response_format == "vtt":
        return PlainTextResponse(vtt(result.segments), media_type="text/vtt")
    duration = result.timings["audio_seconds"]
    usage = {"type": "duration", "seconds": duration}
    if response_format == "json":
        return JSONResponse({"text": result.text, "usage": usage})
    segments = [
        {
            "id": i,
            "seek": round(s.start * 100),
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "tokens": s.token_ids,
        }
        for i, s in enumerate(result.segments)
        if s.text
    ]
    body = {"task": "transcribe", "language": "english", "duration": duration,
            "text": result.text, "segments": segments, "usage": usage}  # fmt: skip
    if words:  # OpenAI's shape: one list for the whole audio
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end}
                         for s in result.segments for w in s.words or []]  # fmt: skip
    return JSONResponse(body)


async def _while_connected(request: Request, work: Awaitable[Transcription]) -> Transcription:
    """``work``, cancelled if the client hangs up meanwhile (the model moves on to the next
    request instead of decoding for nobody)."""
    job = asyncio.ensure_future(work)
    try:
        while not (await asyncio.wait({job}, timeout=DISCONNECT_POLL))[0]:
            if await request.is_disconnected():
                raise ClientDisconnect
        return job.result()
    finally:
        job.cancel()


class EventStream(StreamingResponse):
    """Server-sent events as OpenAI sends them; an error after the first byte (the status is
    sent by then) is an event carrying OpenAI's error body. However the response ends, a client
    gone included, the decode is stopped and the upload removed."""

    def __init__(self, worker: ModelWorker, folder: Path, path: Path, prompt: str | None):
        self.folder = folder
        self.events = self._events(worker, path, prompt)
        super().__init__(self.events, media_type="text/event-stream")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.events.aclose()
            shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    async def _events(worker: ModelWorker, path: Path, prompt: str | None) -> AsyncIterator[str]:
        try:
            async with contextlib.aclosing(worker.stream(path, prompt=prompt)) as items:
                async for item in items:
                    if isinstance(item, str):
                        event = {"type": "transcript.text.delta", "delta": item}
                    else:
                        event = {"type": "transcript.text.done", "text": item.text}
                    yield f"data: {json.dumps(event)}\n\n"
        except TinyAudioError as exc:
            yield f"data: {_failure(exc, str(path), 'the upload').body.decode()}\n\n"
        except Exception as exc:  # the status is sent: the error can only be an event
            log.exception("streamed request failed")
            body = error(500, f"internal error: {type(exc).__name__}: {exc}", "internal_error")
            yield f"data: {body.body.decode()}\n\n"
