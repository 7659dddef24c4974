"""Segments → subtitle cues → SubRip (.srt) and WebVTT (.vtt), the formats players read.

With word timestamps, cues are cut as subtitle guidelines ask: at a pause (≥ 0.6 s), after a
sentence once the cue has some length, and before a cue passes two 42-character lines or 7 s;
each cue is wrapped into at most two balanced lines. Without them a cue is a transcriber window
(≤ 30 s, cut at a pause). ``vtt(..., word_timing=True)`` adds WebVTT's inline timestamps before
each word, which players use to reveal or highlight words as they are spoken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tinyaudio.runtime.alignment import Word
from tinyaudio.runtime.transcribe import Segment

LINE_CHARS = 42
MAX_LINES = 2
MAX_SECONDS = 7.0
PAUSE_SECONDS = 0.6
SENTENCE_CHARS = 20  # a sentence end closes a cue this long


@dataclass
class Cue:
    start: float
    end: float
    text: str
    words: list[Word] | None = None


def timestamp(seconds: float, decimal: str = ",") -> str:
    """HH:MM:SS,mmm (SubRip) or HH:MM:SS.mmm (WebVTT, ``decimal="."``)."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _breaks(cue: list[Word], word: Word) -> bool:
    """Whether ``word`` must start a new cue after ``cue``."""
    text = " ".join(w.word for w in cue)
    return (
        word.start - cue[-1].end >= PAUSE_SECONDS
        or (cue[-1].word[-1:] in ".?!" and len(text) >= SENTENCE_CHARS)
        or _split(f"{text} {word.word}") is None
        or word.end - cue[0].start > MAX_SECONDS
    )


def cues(segments: Iterable[Segment]) -> list[Cue]:
    out = []
    for segment in segments:
        if not segment.text:
            continue
        if not segment.words:
            out.append(Cue(segment.start, segment.end, segment.text))
            continue
        groups = [[segment.words[0]]]
        for word in segment.words[1:]:
            if _breaks(groups[-1], word):
                groups.append([])
            groups[-1].append(word)
        out += [Cue(g[0].start, g[-1].end, " ".join(w.word for w in g), g) for g in groups]
    return out


def _split(text: str) -> int | None:
    """Where to break ``text`` into two lines of at most LINE_CHARS, as evenly as possible:
    -1 when it fits on one line, None when two lines cannot hold it."""
    if len(text) <= LINE_CHARS:
        return -1
    fitting = [i for i, c in enumerate(text) if c == " " and i <= LINE_CHARS
               and len(text) - i - 1 <= LINE_CHARS]  # fmt: skip
    return min(fitting, key=lambda i: abs(2 * i - len(text))) if fitting else None


def wrap(text: str) -> str:
    """One line if it fits, else two balanced lines (a cue too long for two stays one line)."""
    at = _split(text)
    return text if at is None or at < 0 else text[:at] + "\n" + text[at + 1 :]


def _timed_words(cue: Cue) -> str:
    """``word <00:00:01.250>word …``: each later word preceded by its start (WebVTT)."""
    parts = [cue.words[0].word]
    parts += [f"<{timestamp(w.start, '.')}>{w.word}" for w in cue.words[1:]]
    at = _split(cue.text)  # break before the same word as the plain text does
    if at is None or at < 0:
        return " ".join(parts)
    first = cue.text[:at].count(" ") + 1
    return " ".join(parts[:first]) + "\n" + " ".join(parts[first:])


def srt(segments: Iterable[Segment]) -> str:
    return "".join(
        f"{number}\n{timestamp(c.start)} --> {timestamp(c.end)}\n{wrap(c.text)}\n\n"
        for number, c in enumerate(cues(segments), start=1)
    )


def vtt(segments: Iterable[Segment], word_timing: bool = False) -> str:
    body = []
    for cue in cues(segments):
        text = _timed_words(cue) if word_timing and cue.words else wrap(cue.text)
        body.append(f"{timestamp(cue.start, '.')} --> {timestamp(cue.end, '.')}\n{text}\n\n")
    return "WEBVTT\n\n" + "".join(body)
