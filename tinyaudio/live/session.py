"""The live loop: captured blocks → 16 kHz → utterances → partial and final transcripts.

Partials re-decode the growing utterance every ``partial_interval`` seconds of audio, only when
no captured audio is waiting (a slow device skips partials rather than falling behind the
speaker) and not while the speaker pauses (a partial started as speech ends would delay the
final by its whole decode). Each decode reuses the engine's cached prompt prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tinyaudio.live.capture import Capture
from tinyaudio.live.vad import Segmenter, Utterance
from tinyaudio.runtime.audio import Converter
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.transcribe import Transcriber


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

    def run(self, capture: Capture) -> Iterator[Event]:
        """Events until the capture ends or is stopped; the last utterance is flushed."""
        converter = Converter(capture.sample_rate, "input")
        partial_end = 0.0
        for block in capture.stream():
            for utterance in self.segmenter.feed(converter(block)):
                yield from self._final(utterance)
            span = self.segmenter.span()
            waiting = not capture.blocks.empty()
            if span is None or not self.partial_interval or waiting or self.segmenter.pausing:
                continue
            start, end = span
            if start >= partial_end:  # a new utterance
                partial_end = start
            if end - partial_end >= self.partial_interval:
                partial_end = end
                yield self._event("partial", self.segmenter.current())
        self.segmenter.feed(converter.finish())
        last = self.segmenter.flush()
        if last is not None:
            yield from self._final(last)

    def _final(self, utterance: Utterance) -> Iterator[Event]:
        event = self._event("final", utterance)
        if event.text:  # nothing for an utterance the model hears no words in
            yield event

    def _event(self, kind: str, utterance: Utterance) -> Event:
        text = self.transcriber.transcribe(utterance.audio, SAMPLE_RATE).text
        return Event(kind, round(utterance.start, 3), round(utterance.end, 3), text)
