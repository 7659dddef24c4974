"""The live loop: captured blocks → 16 kHz → utterances → partial and final transcripts.

Partials re-decode the growing utterance every ``partial_interval`` seconds of audio, only when
no captured audio is waiting (a slow device skips partials rather than falling behind the
speaker) and not while the speaker pauses (a partial started as speech ends would delay the
final by its whole decode). Each decode reuses the engine's cached prompt prefix.

While the speaker pauses, the final is decoded ahead: once the pause has lasted the padding the
utterance keeps, its audio is complete, and the decode runs during the rest of the VAD's
end-of-speech wait instead of after it. If the pause ends the utterance, that text is its final;
if speech resumes, the decode is dropped. A partial in flight gives way at that same point: between
its tokens the audio that arrived meanwhile goes through the VAD, and once the utterance is ending
(or has ended) the partial is dropped, so it never holds back the final.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from tinyaudio.live.capture import Capture
from tinyaudio.live.vad import Segmenter, Utterance
from tinyaudio.runtime.audio import Converter
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.transcribe import Transcriber


class _SupersededError(Exception):
    """The utterance a partial is being decoded for has paused or ended."""


@dataclass
class Event:
    kind: str  # "partial" (provisional, will be replaced) or "final"
    start: float
    end: float
    text: str


class LiveTranscriber:
    def __init__(
        self, transcriber: Transcriber, segmenter: Segmenter, partial_interval: float = 1.0
    ) -> None:
        self.transcriber = transcriber
        self.segmenter = segmenter
        self.partial_interval = partial_interval
        self._ahead: tuple[tuple, Event] | None = None  # a final decoded during the pause
        self._finished: list[Utterance] = []  # utterances the VAD ended, finals to come
        self._converter: Converter | None = None
        self.finals_decoded_ahead = 0
        self.partials_dropped = 0

    def run(self, capture: Capture) -> Iterator[Event]:
        """Events until the capture ends or is stopped; the last utterance is flushed."""
        self._converter = None
        partial_end = 0.0
        for block in capture.stream():
            self._feed(capture, block)
            yield from self._finals()
            span = self.segmenter.span()
            if span is None or not capture.blocks.empty():
                continue
            if self.segmenter.pausing:
                self._decode_ahead()
                continue
            if not self.partial_interval:
                continue
            start, end = span
            if start >= partial_end:  # a new utterance
                partial_end = start
            if end - partial_end >= self.partial_interval:
                partial_end = end
                yield from self._partial(capture)
                yield from self._finals()
        if self._converter is not None:
            self._finished += self.segmenter.feed(self._converter.finish())
        last = self.segmenter.flush()
        self._finished += [last] if last is not None else []
        yield from self._finals()

    def superseded(self, capture: Capture) -> bool:
        """Feed the audio waiting in ``capture`` to the VAD (utterances it finishes are kept for
        their finals); whether the utterance has since ended or is ending (a pause as long as
        the padding it keeps: its final can be decoded now)."""
        while True:
            try:
                block = capture.blocks.get_nowait()
            except queue.Empty:
                break
            if block is None:  # the end of the source: left for capture.stream() to see
                capture.blocks.put(None)
                break
            self._feed(capture, block)
        return bool(self._finished) or self.segmenter.ending

    def _feed(self, capture: Capture, block: np.ndarray) -> None:
        if self._converter is None:
            self._converter = Converter(capture.sample_rate, "input")
        self._finished += self.segmenter.feed(self._converter(block))

    def _partial(self, capture: Capture) -> Iterator[Event]:
        def watch(_token: int) -> None:
            if self.superseded(capture):
                raise _SupersededError

        try:
            yield self._event("partial", self.segmenter.current(), watch)
        except _SupersededError:
            self.partials_dropped += 1

    def _finals(self) -> Iterator[Event]:
        finished, self._finished = self._finished, []
        for utterance in finished:
            yield from self._final(utterance)

    def _decode_ahead(self) -> None:
        utterance = self.segmenter.pending()
        if utterance is not None and (self._ahead is None or self._ahead[0] != _key(utterance)):
            self._ahead = (_key(utterance), self._event("final", utterance))

    def _final(self, utterance: Utterance) -> Iterator[Event]:
        if self._ahead is not None and self._ahead[0] == _key(utterance):
            event = self._ahead[1]
            self.finals_decoded_ahead += 1
        else:
            event = self._event("final", utterance)
        self._ahead = None
        if event.text:  # nothing for an utterance the model hears no words in
            yield event

    def _event(self, kind: str, utterance: Utterance,
               on_token: Callable[[int], None] | None = None) -> Event:  # fmt: skip
        text = self.transcriber.transcribe(utterance.audio, SAMPLE_RATE, on_token=on_token).text
        return Event(kind, round(utterance.start, 3), round(utterance.end, 3), text)


def _key(utterance: Utterance) -> tuple[float, float, int]:
    return utterance.start, utterance.end, len(utterance.audio)
