"""Batch transcription beyond one machine: the same per-file work as ``--jobs``, on a Ray cluster.

``--ray [ADDRESS]`` starts ``--jobs`` actors, each holding a loaded Transcriber and asking Ray
for ``--threads`` CPUs, and hands them files through an ActorPool. An actor that dies (a node
lost, out of memory, a killed process) is restarted by Ray and its files are retried; a file
that fails in a live actor is reported as it is locally and does not stop the rest. Workers
read the bundle and the audio by path: on a cluster of several machines both must be at the
same paths on every node (shared storage).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from tinyaudio.batch import ModelLoadError, ModelOptions
from tinyaudio.errors import TinyAudioError, missing_extra
from tinyaudio.runtime.transcribe import Transcription

RESTARTS = 3  # how often Ray may restart a dead actor (and retry its files)


class _Worker:
    """One Ray actor: a Transcriber loaded once, then file after file."""

    def __init__(self, options: ModelOptions) -> None:
        self.options = options
        try:
            self.transcriber, self.load_error = options.load(), None
        except TinyAudioError as exc:  # raised here, it would kill the actor for good
            self.transcriber, self.load_error = None, str(exc)

    def transcribe(self, path: str) -> tuple[str, Transcription | TinyAudioError]:
        """(path, result or error): the pool returns results in completion order."""
        if self.load_error is not None:
            return path, ModelLoadError(self.load_error)
        try:
            return path, self.options.transcribe(self.transcriber, Path(path), None)
        except TinyAudioError as exc:
            return path, exc


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` ("auto": the one this machine belongs to), or start a
    local one when None; reuse a connection this process already has."""
    try:
        import ray
    except ImportError as exc:
        raise missing_extra(exc, "tinyaudio transcribe --ray", "ray") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray instance"
        raise TinyAudioError(f"cannot start or reach {where}: {exc}") from None


def transcribe_on_ray(
    options: ModelOptions,
    paths: list[Path],
    jobs: int,
    address: str | None,
    on_audio: Callable[[float], None] | None = None,
) -> Iterator[tuple[Path, Transcription | TinyAudioError]]:
    """(path, result or error) for every path, in the order they finish, like
    ``batch.transcribe_many``; ``jobs`` actors, each with ``options.threads`` CPUs."""
    connect(address)
    import ray
    from ray.util import ActorPool

    worker = ray.remote(_Worker).options(
        num_cpus=options.threads or 1, max_restarts=RESTARTS, max_task_retries=RESTARTS
    )
    pool = ActorPool([worker.remote(options) for _ in range(jobs)])
    for path in paths:
        pool.submit(lambda actor, item: actor.transcribe.remote(item), str(path))
    for _ in paths:
        try:
            path, outcome = pool.get_next_unordered()
        except ray.exceptions.RayError as exc:
            raise TinyAudioError(f"the Ray cluster failed: {str(exc).splitlines()[0]}") from None
        if isinstance(outcome, ModelLoadError):
            raise outcome
        yield Path(path), outcome
        if on_audio is not None and isinstance(outcome, Transcription):
            on_audio(outcome.timings["audio_seconds"])
