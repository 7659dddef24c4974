"""The live loop: captured blocks → 16 kHz → utterances → partial and final transcripts.

Partials re-decode the growing utterance every ``partial_interval`` seconds of audio, only when
no captured audio is waiting (a slow device skips partials rather than falling behind the
speaker) and not while the speaker pauses (a partial started as speech ends would delay the
final by its whole decode). Each decode reuses the engine's cached prompt prefix.

While the speaker pauses, the final is decoded ahead: once the pause has lasted the padding the
utterance keeps, its audio is complete, and the decode runs during the rest of the VAD's
end-of-speech wait instead of after it. If the pause ends the utterance, that text is its final;
if speech resumes, the decode is dropped.
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
        self._ahead: tuple[tuple, Event] | None = None  # a final decoded during the pause
        self.finals_decoded_ahead = 0

    def run(self, capture: Capture) -> Iterator[Event]:
        """Events until the capture ends or is stopped; the last utterance is flushed."""
        converter = Converter(capture.sample_rate, "input")
        partial_end = 0.0
        for block in capture.stream():
            for utterance in self.segmenter.feed(converter(block)):
                yield from self._final(utterance)
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
                yield self._event("partial", self.segmenter.current())
        self.segmenter.feed(converter.finish())
        last = self.segmenter.flush()
        if last is not None:
            yield from self._final(last)

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

    def _event(self, kind: str, utterance: Utterance) -> Event:
        text = self.transcriber.transcribe(utterance.audio, SAMPLE_RATE).text
        return Event(kind, round(utterance.start, 3), round(utterance.end, 3), text)


def _key(utterance: Utterance) -> tuple[float, float, int]:
    return utterance.start, utterance.end, len(utterance.audio)
