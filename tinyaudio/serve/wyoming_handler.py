"""Home Assistant's Wyoming protocol: `describe` → `info`; `transcribe`, `audio-start`,
`audio-chunk`…, `audio-stop` → `transcript-start`, `transcript-chunk`…, `transcript`,
`transcript-stop`.

Audio arrives as raw PCM at whatever rate, width and channel count the client declares in
`audio-start`; it is converted to 16 kHz mono as it arrives (soxr, as for files). Anything wrong
with a stream (no `audio-start`, a chunk in another format, too long, undecodable) is answered
with an `error` event and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler

from tinyaudio import __version__
from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.audio import Converter
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.serve.worker import ModelInfo, ModelWorker, RequestTimeoutError

log = logging.getLogger("tinyaudio")
CLIENT_POLL = 0.25  # seconds between checks that a client is still there while it waits
SAMPLE_TYPES = {2: np.int16, 4: np.int32}  # little-endian signed PCM; 1 byte is unsigned
ATTRIBUTION = Attribution(name="tinyaudio", url="https://github.com/alexkroman/tiny-audio")


class PcmStream:
    """Raw PCM chunks in the format of one `audio-start` → 16 kHz mono float32 blocks."""

    def __init__(self, rate: int, width: int, channels: int, max_seconds: float) -> None:
        if width not in (1, *SAMPLE_TYPES) or channels < 1:
            raise TinyAudioError(f"unsupported audio: {width}-byte samples, {channels} channels")
        self.format = (rate, width, channels)
        self.limit = int(max_seconds * SAMPLE_RATE)
        self.max_seconds = max_seconds
        self.converter = Converter(rate, "audio")
        self.blocks: list[np.ndarray] = []
        self.samples = 0

    def add(self, chunk: AudioChunk) -> None:
        if (chunk.rate, chunk.width, chunk.channels) != self.format:
            raise TinyAudioError(
                f"audio-chunk is {chunk.rate} Hz × {chunk.width} bytes × {chunk.channels} "
                f"channels; audio-start declared {self.format[0]} Hz × {self.format[1]} bytes × "
                f"{self.format[2]} channels"
            )
        _, width, channels = self.format
        if len(chunk.audio) % (width * channels):
            raise TinyAudioError(f"audio-chunk of {len(chunk.audio)} bytes is not whole frames")
        if width == 1:
            samples = np.frombuffer(chunk.audio, np.uint8).astype(np.int16) - 128
            samples = (samples * 256).astype(np.int16)
        else:
            samples = np.frombuffer(chunk.audio, np.dtype(SAMPLE_TYPES[width]).newbyteorder("<"))
        self._keep(self.converter(samples.reshape(-1, channels)))

    def finish(self) -> np.ndarray:
        self._keep(self.converter.finish())
        if not self.samples:
            raise TinyAudioError("the audio stream is empty")
        return np.concatenate(self.blocks)

    def _keep(self, block: np.ndarray) -> None:
        self.samples += len(block)
        if self.samples > self.limit:
            raise TinyAudioError(f"the audio stream is longer than {self.max_seconds:g} s")
        self.blocks.append(block)


def describe(model: ModelInfo) -> Info:
    asr_model = AsrModel(
        name=model.name,
        description=model.description,
        attribution=ATTRIBUTION,
        installed=True,
        version=__version__,
        languages=model.languages,
    )
    program = AsrProgram(
        name="tinyaudio",
        description="tiny-audio speech recognition on onnxruntime",
        attribution=ATTRIBUTION,
        installed=True,
        version=__version__,
        models=[asr_model],
        supports_transcript_streaming=True,
    )
    return Info(asr=[program])


class WyomingHandler(AsyncEventHandler):
    """One client connection; its requests go to the shared ``worker``."""

    def __init__(self, reader, writer, worker: ModelWorker, model: ModelInfo) -> None:
        super().__init__(reader, writer)
        self.worker = worker
        self.model = model
        self.stream: PcmStream | None = None
        self.failed = False  # the current stream failed: its remaining events are dropped
        self.busy = False  # from audio-start to the reply's end: a drain waits for it

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._handle(event)
        except TinyAudioError as exc:
            await self._fail(event, str(exc), _code(exc))
        except (KeyError, TypeError) as exc:  # a field missing or of the wrong type
            message = f"malformed {event.type} event ({type(exc).__name__}: {exc})"
            await self._fail(event, message, "malformed")
        return True

    async def _fail(self, event: Event, message: str, code: str) -> None:
        """One error event; the rest of a failed stream is dropped quietly until its
        audio-stop or the next request (no error per chunk)."""
        self.failed = AudioStart.is_type(event.type) or AudioChunk.is_type(event.type)
        self.stream, self.busy = None, False
        await self.write_event(Error(text=message, code=code).event())

    async def _handle(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(describe(self.model).event())
        elif Transcribe.is_type(event.type):
            self.stream, self.failed = None, False  # a new request: what came before is dropped
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self.failed, self.busy = False, True
            self.stream = PcmStream(start.rate, start.width, start.channels, self.model.max_seconds)
        elif AudioChunk.is_type(event.type):
            if self.stream is not None:
                self.stream.add(AudioChunk.from_event(event))
            elif not self.failed:
                raise TinyAudioError("audio-chunk before audio-start")
        elif AudioStop.is_type(event.type):
            if self.stream is not None:
                audio, self.stream = self.stream.finish(), None
                await self._transcribe(audio)
            elif not self.failed:
                raise TinyAudioError("audio-stop before audio-start")
            self.failed = self.busy = False

    async def _transcribe(self, audio: np.ndarray) -> None:
        self.worker.check_capacity()  # "busy" before transcript-start, not in the middle
        language = self.model.languages[0]
        await self.write_event(TranscriptStart(language=language).event())
        watcher = asyncio.ensure_future(self._cancel_if_client_leaves(asyncio.current_task()))
        try:
            async with contextlib.aclosing(self.worker.stream(audio, SAMPLE_RATE)) as items:
                async for item in items:
                    if isinstance(item, str):
                        await self.write_event(TranscriptChunk(text=item).event())
                    else:
                        transcript = Transcript(text=item.text, language=language)
                        await self.write_event(transcript.event())
        finally:
            watcher.cancel()
        await self.write_event(TranscriptStop().event())

    async def _cancel_if_client_leaves(self, task: asyncio.Task) -> None:
        """Nothing is read while a request decodes: watch for the client's hang-up, so the
        model stops decoding for nobody (cancelling ``task`` ends this connection)."""
        while not self.reader.at_eof():
            await asyncio.sleep(CLIENT_POLL)
        task.cancel()

    async def run(self) -> None:
        """As the base class, but a client that breaks the framing or vanishes mid-reply only
        ends its own connection."""
        try:
            await super().run()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            log.info("wyoming client dropped: %s", exc)


def _code(exc: TinyAudioError) -> str:
    return "timeout" if isinstance(exc, RequestTimeoutError) else type(exc).__name__.lower()
