"""Transcriber: audio → text with a bundle, numpy + onnxruntime + tokenizers only.

``Transcriber.from_bundle(path).transcribe(audio)`` is the API an app embeds. Clips longer than
30 s are cut into windows at pauses (runtime/segments.py) while they are read, and each window is
transcribed; the result keeps every window's start/end time. ``stream`` yields text as tokens
arrive. A window in which Silero VAD hears no speech is not decoded (the decoder would invent
text for silence or noise); ``speech_gate=False`` decodes every window, as upstream does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.alignment import (
    AttentionRecorder,
    Word,
    seconds_per_row,
    time_words,
    token_pieces,
    words_of,
)
from tinyaudio.runtime.audio import audio_blocks
from tinyaudio.runtime.engine import Engine
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.segments import speech_windows, windows
from tinyaudio.runtime.speech import SpeechDetector, contains_speech
from tinyaudio.runtime.text import finish_transcript

TOKENS_PER_SECOND = 12  # speech rarely exceeds ~4 words/s; bounds runaway decoding on noise
MIN_TOKENS = 16
LOOP_REPEATS = 8  # stop when the last tokens are one 1-4-token pattern repeated this often
# An instruction, not a document: attention grows with the square of the prompt (10 k characters
# cost 1.5 GB on the 7 M demo model).
MAX_INSTRUCTION_TOKENS = 256


@dataclass
class Segment:
    start: float
    end: float
    text: str
    token_ids: list[int]
    words: list[Word] | None = None  # with word_timestamps=True


@dataclass
class Transcription:
    text: str
    segments: list[Segment]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def token_ids(self) -> list[int]:
        return [t for segment in self.segments for t in segment.token_ids]


def looping(tokens: list[int]) -> bool:
    """True when the tail is a short pattern repeated LOOP_REPEATS times (a decode loop)."""
    for period in range(1, 5):
        span = period * LOOP_REPEATS
        if len(tokens) >= span and tokens[-span:] == tokens[-period:] * LOOP_REPEATS:
            return True
    return False


def token_probability(logits: np.ndarray, token: int) -> float:
    shifted = logits - logits.max()
    return float(np.exp(shifted[token]) / np.exp(shifted).sum())


class _Counted:
    """Blocks passed through, their samples counted (the audio's length, windows or not)."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self.blocks, self.samples = blocks, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.blocks:
            self.samples += len(block)
            yield block


class _WindowTiming:
    """One window's attention recorder and chosen-token probabilities."""

    def __init__(self, heads: list[tuple[int, int]], scale: float) -> None:
        self.recorder = AttentionRecorder(heads, scale)
        self.probabilities: list[float] = []


class TextDeltas:
    """A window's token ids → the text each new token adds, whole characters only (a token may
    hold half of a multi-byte character), before the final clean-up."""

    def __init__(self, transcriber: Transcriber, lead: str = "") -> None:
        self.transcriber = transcriber
        self.lead = lead  # put before the first piece (the space between windows)
        self.ids: list[int] = []
        self.shown = ""

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.transcriber.tokenizer.decode(self.transcriber._text_ids(self.ids))
        if not (text.startswith(self.shown) and len(text) > len(self.shown)) or "\ufffd" in text:
            return ""
        piece, lead = text[len(self.shown) :], "" if self.shown else self.lead
        self.shown = text
        return lead + piece


class Transcriber:
    def __init__(
        self, engine: Engine, tokenizer: Tokenizer, exact: bool = False, speech_gate: bool = True
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.exact = exact
        self.prompt = engine.manifest["prompt"]
        self.detector = SpeechDetector() if speech_gate else None

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        threads: int | None = None,
        provider: str | None = None,
        exact: bool = False,
        speech_gate: bool = True,
    ) -> Transcriber:
        """``exact``: upstream's 30 s padding (token-exact with PyTorch); default: real length.
        ``speech_gate``: skip windows with no speech (off: decode everything, as upstream)."""
        engine = Engine.from_bundle(Path(path), threads, provider)
        tokenizer_path = Path(path) / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise TinyAudioError(f"cannot load {tokenizer_path}: {exc}") from None
        return cls(engine, tokenizer, exact, speech_gate)

    def prompt_ids(self, instruction: str | None) -> tuple[list[int], list[int]]:
        """Ids before and after the audio slots; ``instruction`` replaces the default one."""
        if instruction is None:
            return self.prompt["prefix_ids"], self.prompt["suffix_ids"]
        before, after = self.prompt["turn_prefix_ids"], self.prompt["turn_suffix_ids"]
        if not instruction:
            return before, after
        prefix = self.prompt["placement"] == "prefix"
        ids = self.tokenizer.encode(instruction if prefix else " " + instruction).ids
        if len(ids) > MAX_INSTRUCTION_TOKENS:
            raise TinyAudioError(
                f"the prompt is {len(ids)} tokens long; an instruction may have at most "
                f"{MAX_INSTRUCTION_TOKENS}"
            )
        return (before + ids, after) if prefix else (before, ids + after)

    def _speech(self, window: np.ndarray, timings: dict[str, float]) -> bool:
        """Whether ``window`` is worth decoding (always, with the speech gate off)."""
        if self.detector is None:
            return True
        started = time.perf_counter()
        found = contains_speech(window, self.detector)
        timings["speech_check"] = timings.get("speech_check", 0.0) + time.perf_counter() - started
        return found

    def transcribe(
        self,
        audio: np.ndarray | str | Path,
        sample_rate: int | None = None,
        prompt: str | None = None,
        on_token: Callable[[int], None] | None = None,
        on_text: Callable[[str], None] | None = None,
        on_window: Callable[[float], None] | None = None,
        word_timestamps: bool = False,
        vad: bool = False,
    ) -> Transcription:
        """Transcribe a file or an array (any rate, any channels) into text with segment times.

        ``word_timestamps``: each segment also gets its words with start, end and probability
        (from the decoder's attention; runtime/alignment.py). ``vad``: windows are the stretches
        of speech Silero VAD finds (silence between them is skipped) instead of back-to-back
        windows cut at the quietest moment.

        ``on_token`` gets each token id as it is produced; ``on_text`` the text it adds (whole
        characters, windows joined by a space), for servers that stream while they decode;
        ``on_window`` the seconds of audio each window moved through (progress bars). An exception
        raised by any of them stops the transcription."""
        timings: dict[str, float] = {}
        segments = []
        ids_around = self.prompt_ids(prompt)  # once per call; a bad prompt fails before any audio
        alignment = self.word_alignment() if word_timestamps else None
        spoken = False  # some window has produced text: the next one's text starts with a space
        blocks = _Counted(audio_blocks(audio, sample_rate))
        found = speech_windows(blocks, self._vad_detector()) if vad else windows(blocks)
        done = 0  # samples the progress has been told about
        for start, window in found:
            ids, words = [], [] if alignment else None
            timing = _WindowTiming(*alignment) if alignment else None
            if vad or self._speech(window, timings):  # VAD windows are speech already
                deltas = TextDeltas(self, " " if spoken else "")
                for token in self._tokens(window, ids_around, timings, timing):
                    ids.append(token)
                    if on_token is not None:
                        on_token(token)
                    if on_text is not None and (piece := deltas.push(token)):
                        on_text(piece)
                spoken = spoken or bool(deltas.shown)
            text = finish_transcript(self.tokenizer.decode(self._text_ids(ids)))
            if timing is not None and ids:
                timed = self._words(timing, ids, window, start / SAMPLE_RATE, timings)
                words = words_of(text, timed)
            end = start + len(window)
            segments.append(Segment(start / SAMPLE_RATE, end / SAMPLE_RATE, text, ids, words))
            if on_window is not None and end > done:
                on_window((end - done) / SAMPLE_RATE)
            done = max(done, end)
        if on_window is not None and blocks.samples > done:  # silence after the last window
            on_window((blocks.samples - done) / SAMPLE_RATE)
        timings["audio_seconds"] = round(blocks.samples / SAMPLE_RATE, 4)
        text = " ".join(s.text for s in segments if s.text)
        return Transcription(text, segments, {k: round(v, 4) for k, v in timings.items()})

    def stream(
        self,
        audio: np.ndarray | str | Path,
        sample_rate: int | None = None,
        prompt: str | None = None,
    ) -> Iterator[str]:
        """Yield text as tokens arrive (before the final clean-up; whole characters only)."""
        ids_around = self.prompt_ids(prompt)
        for _, window in windows(audio_blocks(audio, sample_rate)):
            if not self._speech(window, {}):
                continue
            deltas = TextDeltas(self)
            for token in self._tokens(window, ids_around, {}):
                if piece := deltas.push(token):
                    yield piece

    def _vad_detector(self) -> SpeechDetector:
        """The speech gate's detector (its own when the gate is off)."""
        return self.detector or SpeechDetector()

    def word_alignment(self) -> tuple[list[tuple[int, int]], float]:
        """The bundle's alignment heads and attention scale, or a one-line reason why not."""
        alignment = self.engine.manifest.get("alignment")
        if not alignment:
            raise TinyAudioError(
                "this bundle has no word alignment: it was exported before word timestamps "
                "existed, or its model transcribed too few of the alignment clips; re-export it "
                "with tinyaudio-export"
            )
        missing = {layer for layer, _ in alignment["heads"]} - set(self.engine.decoder.queries)
        if missing:
            raise TinyAudioError(f"the decoder graph lacks alignment queries of layers {missing}")
        return [tuple(head) for head in alignment["heads"]], alignment["scale"]

    def _words(
        self, timing: _WindowTiming, ids: list[int], window: np.ndarray, offset: float,
        timings: dict[str, float],
    ) -> list[Word]:  # fmt: skip
        """The window's words, times from the start of the audio."""
        started = time.perf_counter()
        stops = set(self.engine.stop_ids)
        text = [i for i, token in enumerate(ids) if token not in stops]
        pieces = token_pieces(self.tokenizer, [ids[i] for i in text])
        attention = timing.recorder.attention()[:, text]
        probabilities = [timing.probabilities[i] for i in text]
        row_seconds = seconds_per_row(self.engine.manifest["audio"])
        words = time_words(attention, pieces, probabilities, row_seconds, window)
        for word in words:
            word.start, word.end = round(word.start + offset, 3), round(word.end + offset, 3)
        timings["word_timing"] = timings.get("word_timing", 0.0) + time.perf_counter() - started
        return words

    def _text_ids(self, ids: list[int]) -> list[int]:
        stops = set(self.engine.stop_ids)
        return [t for t in ids if t not in stops]

    def _tokens(
        self,
        samples: np.ndarray,
        ids_around: tuple[list[int], list[int]],
        timings: dict,
        timing: _WindowTiming | None = None,
    ) -> Iterator[int]:
        """Greedy token ids for one ≤30 s window (stop id included when produced), with the
        prompt ids before and after its audio rows (``prompt_ids``); ``timing`` collects what
        word timestamps need."""
        engine = self.engine

        def timed(name: str, started: float) -> float:
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - started
            return now

        clock = time.perf_counter()
        features, mel_length = engine.features(samples, padded=self.exact)
        clock = timed("features", clock)
        states = engine.encode(features)
        clock = timed("encoder", clock)
        rows = engine.audio_rows_from(states, mel_length)
        clock = timed("projector", clock)
        prefix, suffix = ids_around
        limit = min(
            self.prompt["max_new_tokens"],
            MIN_TOKENS + int(TOKENS_PER_SECOND * len(samples) / SAMPLE_RATE),
        )
        tokens: list[int] = []
        recorder = timing.recorder if timing else None
        for token, logits in engine.decode(rows, limit, prefix, suffix, recorder=recorder):
            clock = timed("decode" if tokens else "prefill", clock)
            tokens.append(token)
            if timing is not None:
                timing.probabilities.append(token_probability(logits[0], token))
            yield token
            if looping(tokens):
                break
        prompt_tokens = len(prefix) + len(rows) + len(suffix)
        timings["prompt_tokens"] = timings.get("prompt_tokens", 0) + prompt_tokens
        timings["new_tokens"] = timings.get("new_tokens", 0) + len(tokens)
