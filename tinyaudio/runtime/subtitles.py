"""Segments → SubRip (.srt) and WebVTT (.vtt) text, the subtitle formats players and clients read.

One cue per segment that holds text; times are the segment's (a window of at most 30 s).
"""

from __future__ import annotations

from collections.abc import Iterable

from tinyaudio.runtime.transcribe import Segment


def timestamp(seconds: float, decimal: str = ",") -> str:
    """HH:MM:SS,mmm (SubRip) or HH:MM:SS.mmm (WebVTT, ``decimal="."``)."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cues(segments: Iterable[Segment], decimal: str) -> list[str]:
    return [
        f"{timestamp(s.start, decimal)} --> {timestamp(s.end, decimal)}\n{s.text}"
        for s in segments
        if s.text
    ]


def srt(segments: Iterable[Segment]) -> str:
    cues = _cues(segments, ",")
    return "".join(f"{number}\n{cue}\n\n" for number, cue in enumerate(cues, start=1))


def vtt(segments: Iterable[Segment]) -> str:
    return "WEBVTT\n\n" + "".join(f"{cue}\n\n" for cue in _cues(segments, "."))
