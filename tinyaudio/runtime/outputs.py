"""A Transcription → the files transcription tools write: txt, json, srt, vtt, tsv.

The formats and their layout follow openai-whisper's writers, so scripts and players built for
those files read ours. Cues are the transcriber's segments (windows of at most 30 s, cut at
pauses) until word timestamps exist.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinyaudio.runtime.subtitles import srt, vtt
from tinyaudio.runtime.transcribe import Transcription

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def record(result: Transcription, source: str) -> dict:
    """The JSON record (also `tinyaudio transcribe --json`'s line)."""
    return {
        "file": source,
        "text": result.text,
        "segments": [vars(segment) for segment in result.segments],
        "timings": result.timings,
    }


def render(result: Transcription, output_format: str, source: str) -> str:
    if output_format == "txt":
        return result.text + "\n"
    if output_format == "json":
        return json.dumps(record(result, source), ensure_ascii=False) + "\n"
    if output_format == "srt":
        return srt(result.segments)
    if output_format == "vtt":
        return vtt(result.segments)
    if output_format == "tsv":  # whisper's: integer milliseconds, tabs and newlines flattened
        rows = [
            f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{' '.join(s.text.split())}"
            for s in result.segments
            if s.text
        ]
        return "start\tend\ttext\n" + "".join(row + "\n" for row in rows)
    raise ValueError(f"unknown output format {output_format!r}")


def output_paths(source: Path, folder: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """Where ``source``'s outputs go: ``folder/<name without suffix>.<format>``."""
    return {fmt: folder / f"{source.stem}.{fmt}" for fmt in formats}


def write_outputs(result: Transcription, source: Path, paths: dict[str, Path]) -> None:
    """Each file appears whole or not at all (a temporary name, then a rename): an interrupted
    run never leaves a half-written output that a resumed run would take as done."""
    for fmt, path in paths.items():
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(render(result, fmt, str(source)), encoding="utf-8")
        partial.replace(path)
