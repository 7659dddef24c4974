"""A Transcription → the files transcription tools write: txt, json, srt, vtt, tsv.

The formats and their layout follow openai-whisper's writers, so scripts and players built for
those files read ours. srt, vtt and tsv rows are subtitle cues (runtime/subtitles.py): cut at
pauses and length limits when the transcription has word times, else one per ≤ 30 s window.
``words=True`` (``--word-timestamps``) puts the words in the JSON and their times in the vtt.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from tinyaudio.runtime.subtitles import cues, srt, vtt
from tinyaudio.runtime.transcribe import Transcription

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def record(result: Transcription, source: str, words: bool = False) -> dict:
    """The JSON record (also `tinyaudio transcribe --json`'s line); ``words``: with each
    segment's words (start, end, word, probability)."""
    segments = []
    for segment in result.segments:
        fields = asdict(segment)
        if not words or segment.words is None:
            del fields["words"]
        segments.append(fields)
    return {"file": source, "text": result.text, "segments": segments, "timings": result.timings}


def render(result: Transcription, output_format: str, source: str, words: bool = False) -> str:
    if output_format == "txt":
        return result.text + "\n"
    if output_format == "json":
        return json.dumps(record(result, source, words), ensure_ascii=False) + "\n"
    if output_format == "srt":
        return srt(result.segments)
    if output_format == "vtt":
        return vtt(result.segments, word_timing=words)
    if output_format == "tsv":  # whisper's: integer milliseconds, tabs and newlines flattened
        rows = [
            f"{round(c.start * 1000)}\t{round(c.end * 1000)}\t{' '.join(c.text.split())}"
            for c in cues(result.segments)
        ]
        return "start\tend\ttext\n" + "".join(row + "\n" for row in rows)
    raise ValueError(f"unknown output format {output_format!r}")


def output_paths(source: Path, folder: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """Where ``source``'s outputs go: ``folder/<name without suffix>.<format>``."""
    return {fmt: folder / f"{source.stem}.{fmt}" for fmt in formats}


def write_outputs(
    result: Transcription, source: Path, paths: dict[str, Path], words: bool = False
) -> None:
    """Each file appears whole or not at all (a temporary name, then a rename): an interrupted
    run never leaves a half-written output that a resumed run would take as done."""
    for fmt, path in paths.items():
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(render(result, fmt, str(source), words), encoding="utf-8")
        partial.replace(path)
