"""Many recordings, one command: worker processes, each with its own model and threads budget.

``transcribe_many`` yields each file's Transcription (or its one-line error) as it finishes; a
file that fails never stops the others. With one job the model runs in this process and the
progress bar moves window by window; with N jobs, N spawned processes (onnxruntime does not
survive a fork) share the machine's cores and the bar moves file by file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.transcribe import Transcriber, Transcription

# Inputs given as a folder: the files libsndfile decodes, by suffix (files given by name are
# always tried, whatever their name).
AUDIO_SUFFIXES = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                  ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64"}  # fmt: skip


@dataclass(frozen=True)
class ModelOptions:
    """What each worker needs to load its own Transcriber."""

    bundle: Path
    threads: int | None
    provider: str | None
    exact: bool
    speech_gate: bool
    prompt: str | None
    word_timestamps: bool = False
    vad: bool = False

    def load(self) -> Transcriber:
        transcriber = Transcriber.from_bundle(
            self.bundle, self.threads, self.provider, self.exact, self.speech_gate
        )
        transcriber.prompt_ids(self.prompt)  # a bad prompt fails here, once
        if self.word_timestamps:
            transcriber.word_alignment()  # and so does a bundle without word alignment
        return transcriber

    def transcribe(
        self, transcriber: Transcriber, path: Path, on_window: Callable[[float], None] | None
    ) -> Transcription:
        return transcriber.transcribe(
            path,
            prompt=self.prompt,
            on_window=on_window,
            word_timestamps=self.word_timestamps,
            vad=self.vad,
        )


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given; folders → the audio files under them (by suffix), sorted."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise TinyAudioError(f"{path} holds no audio files")
            paths += [p for p in found if p.is_file()]
        else:
            paths.append(path)
    return paths


def threads_per_job(threads: int | None, jobs: int) -> int | None:
    """``threads`` each, or the machine's cores shared out (N jobs × T threads ≤ cores)."""
    if threads is not None or jobs == 1:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // jobs)


class ModelLoadError(TinyAudioError):
    """The bundle or the prompt is wrong: every file would fail the same way, so stop."""


_transcriber: Transcriber | None = None  # a worker process's own model
_load_error: str | None = None


def _load_worker(options: ModelOptions) -> None:
    global _transcriber, _load_error
    try:
        _transcriber = options.load()
    except TinyAudioError as exc:  # raised from the initializer, it would break the pool
        _load_error = str(exc)


def _transcribe_in_worker(path: Path, options: ModelOptions) -> Transcription | TinyAudioError:
    if _load_error is not None:
        raise ModelLoadError(_load_error)
    try:
        return options.transcribe(_transcriber, path, None)
    except TinyAudioError as exc:  # an error is a result: the pool and the other files go on
        return exc


def transcribe_many(
    options: ModelOptions,
    paths: list[Path],
    jobs: int,
    on_audio: Callable[[float], None] | None = None,
) -> Iterator[tuple[Path, Transcription | TinyAudioError]]:
    """(path, result or error) for every path, in the order they finish. ``on_audio`` gets the
    seconds of audio each step completed (a window with one job, a file with several). A model
    that cannot load raises (ModelLoadError from the workers), once."""
    if jobs == 1:
        transcriber = options.load()
        for path in paths:
            try:
                yield path, options.transcribe(transcriber, path, on_audio)
            except TinyAudioError as exc:
                yield path, exc
        return
    spawn = get_context("spawn")
    with ProcessPoolExecutor(jobs, spawn, _load_worker, (options,)) as pool:
        futures = {pool.submit(_transcribe_in_worker, p, options): p for p in paths}
        for future in as_completed(futures):
            path = futures[future]
            try:
                outcome = future.result()
            except BrokenProcessPool:
                died = "a worker process died (out of memory?) before this file finished"
                outcome = TinyAudioError(f"{path}: {died}")
            if on_audio is not None and isinstance(outcome, Transcription):
                on_audio(outcome.timings["audio_seconds"])
            yield path, outcome


def progress_bar(total_seconds: float):
    """Audio time done / total and the speed in × real time, on stderr, only at a terminal."""

    class AudioBar(tqdm):
        @property
        def format_dict(self):  # tqdm's documented hook for fields of one's own
            fields = super().format_dict
            rate = fields["rate"] or (fields["n"] / fields["elapsed"] if fields["elapsed"] else 0)
            fields["speed"] = f"{rate:.1f}× real time" if rate else "…"
            return fields

    return AudioBar(
        total=round(total_seconds, 1),
        disable=not sys.stderr.isatty(),
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}, {speed}]",
        file=sys.stderr,
        leave=False,
    )
