"""Child: our torch-free runtime on one bundle, exact (30 s padded) or fast (unpadded) mode.

It runs the runtime's own path (features → encoder → projector → prompt → prefix-cached prefill →
in-place KV decode), only with a fixed number of new tokens.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tinyaudio.bench.clips import speech_clip, transcript_tokens
from tinyaudio.bench.records import child_main, clip_records, peak_rss_mb
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.engine import Engine


def run_clip(engine: Engine, audio, exact: bool, new_tokens: int) -> tuple[float, ...]:
    started = time.perf_counter()
    features, mel_length = engine.features(audio, padded=exact)
    rows = engine.audio_rows(features, mel_length)
    encoded = time.perf_counter()
    steps = engine.decode(rows, new_tokens, stop=False)
    next(steps)
    first = time.perf_counter()
    count = 1 + sum(1 for _ in steps)
    done = time.perf_counter()
    prompt = engine.manifest["prompt"]
    prompt_tokens = len(prompt["prefix_ids"]) + len(rows) + len(prompt["suffix_ids"])
    return encoded - started, first - encoded, done - first, prompt_tokens, count


def measure(job: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    engine = Engine.from_bundle(Path(job["bundle"]), threads=job["threads"])
    result: dict[str, Any] = {"load_s": time.perf_counter() - started}
    result["rss_loaded_mb"] = peak_rss_mb()
    speech, exact = load_audio(job["audio"]), job["exact"]
    run_clip(engine, speech_clip(speech, 1.0), exact, 4)  # warm-up
    result["clips"] = clip_records(
        job["seconds"],
        job["repeats"],
        lambda s: run_clip(engine, speech_clip(speech, s), exact, transcript_tokens(s)),
    )
    return result


if __name__ == "__main__":
    child_main(measure)
