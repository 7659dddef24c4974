"""Utterances from a live 16 kHz stream, cut where Silero VAD (runtime/speech.py) hears speech."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.speech import FRAME, SpeechDetector


@dataclass
class Utterance:
    start: float  # where speech was detected, in seconds from the start of the stream
    end: float
    audio: np.ndarray  # the speech with up to ``pad`` seconds of context on both sides
    offset: float  # where ``audio`` begins, in seconds from the start of the stream


class Segmenter:
    """Feed 16 kHz blocks; get finished utterances, their audio padded by ``pad`` seconds on
    both sides (soft onsets and endings the detector scores low still reach the decoder).

    An utterance starts at a frame with speech probability ≥ ``threshold`` and ends after
    ``min_silence`` seconds below ``threshold - 0.15`` (hysteresis keeps soft word endings in).
    Utterances with less than ``min_speech`` seconds of speech frames are dropped: a cough or a
    click must not reach the decoder, which would invent text for it. None is longer than
    ``max_seconds`` (the encoder's window); longer speech is cut there and continues.
    """

    def __init__(
        self,
        detector: SpeechDetector,
        threshold: float = 0.5,
        min_silence: float = 0.5,
        pad: float = 0.2,
        min_speech: float = 0.25,
        max_seconds: float = 30.0,
    ) -> None:
        if not 0.15 < threshold < 1.0:
            raise TinyAudioError(f"VAD threshold must be between 0.15 and 1, got {threshold}")
        self.detector = detector
        self.threshold = threshold
        self.silence_frames = max(1, round(min_silence * SAMPLE_RATE / FRAME))
        self.pad_frames = round(pad * SAMPLE_RATE / FRAME)
        self.min_speech_frames = round(min_speech * SAMPLE_RATE / FRAME)
        self.max_frames = int(max_seconds * SAMPLE_RATE / FRAME)
        self._leftover = np.zeros(0, np.float32)
        self._frame_index = 0  # frames seen so far
        self._before: deque[np.ndarray] = deque(maxlen=self.pad_frames)  # pre-roll
        self._frames: list[np.ndarray] = []  # the utterance in progress
        self._start = 0  # its first frame's index (pre-roll included)
        self._onset = 0  # its first speech frame's index
        self._speech = 0  # speech frames in it
        self._quiet = 0  # trailing frames below the end threshold

    @property
    def pausing(self) -> bool:
        """The utterance in progress has gone quiet: it may be about to end."""
        return self._quiet > 0

    def span(self) -> tuple[float, float] | None:
        """(start, end) seconds of the utterance in progress, without copying its audio."""
        if not self._frames:
            return None
        seconds = FRAME / SAMPLE_RATE
        return self._onset * seconds, (self._start + len(self._frames)) * seconds

    @property
    def ending(self) -> bool:
        """The pause has lasted the padding an utterance keeps: if it lasts the end-of-speech
        wait, the utterance ends here, and its audio is all in."""
        return self._quiet >= max(1, self.pad_frames) and self._speech >= self.min_speech_frames

    def pending(self) -> Utterance | None:
        """The utterance that ends here if the pause in progress lasts (``ending``): its final
        can be decoded during the rest of the end-of-speech wait."""
        if not self.ending:
            return None
        spoken = len(self._frames) - self._quiet
        return self._utterance(spoken + self.pad_frames, spoken)

    def current(self) -> Utterance | None:
        """The utterance in progress so far (for partial transcripts)."""
        if not self._frames:
            return None
        return self._utterance(len(self._frames), len(self._frames))

    def feed(self, block: np.ndarray) -> list[Utterance]:
        samples = np.concatenate([self._leftover, block])
        count = len(samples) // FRAME
        self._leftover = samples[count * FRAME :]
        finished = []
        for frame in samples[: count * FRAME].reshape(count, FRAME):
            done = self._step(frame)
            if done is not None:
                finished.append(done)
        return finished

    def flush(self) -> Utterance | None:
        """End of stream: the utterance in progress, if it has enough speech."""
        if self._leftover.size and self._frames:
            self._frames.append(np.pad(self._leftover, (0, FRAME - self._leftover.size)))
        self._leftover = np.zeros(0, np.float32)
        return self._finish(len(self._frames), len(self._frames)) if self._frames else None

    def _step(self, frame: np.ndarray) -> Utterance | None:
        probability = self.detector(frame)
        self._frame_index += 1
        if not self._frames:
            if probability < self.threshold:
                self._before.append(frame)
                return None
            self._frames = [*self._before, frame]
            self._before.clear()
            self._start = self._frame_index - len(self._frames)
            self._onset = self._frame_index - 1
            self._speech, self._quiet = 1, 0
            return None
        self._frames.append(frame)
        if probability >= self.threshold:
            self._speech += 1
        self._quiet = self._quiet + 1 if probability < self.threshold - 0.15 else 0
        if self._quiet >= self.silence_frames:
            spoken = len(self._frames) - self._quiet
            return self._finish(spoken + self.pad_frames, spoken)
        if len(self._frames) >= self.max_frames:
            return self._finish(len(self._frames), len(self._frames))
        return None

    def _finish(self, keep: int, spoken: int) -> Utterance | None:
        """Close the utterance after ``keep`` frames, its speech after ``spoken``; the frames
        after ``keep`` become pre-roll."""
        keep = min(keep, len(self._frames))
        utterance = self._utterance(keep, spoken)
        self._before.extend(self._frames[keep:])
        speech, self._frames, self._speech, self._quiet = self._speech, [], 0, 0
        return utterance if speech >= self.min_speech_frames else None

    def _utterance(self, frames: int, spoken: int) -> Utterance:
        seconds = FRAME / SAMPLE_RATE
        end = (self._start + spoken) * seconds
        audio = np.concatenate(self._frames[:frames])
        return Utterance(self._onset * seconds, end, audio, self._start * seconds)
