"""Child: onnxruntime-genai's own runtime on its model builder's INT4 graph of the same Qwen3
weights. Decoder only (genai has no audio side): the same prompt lengths as our runtime's, as
token ids, and the same number of new tokens."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from tinyaudio.bench.clips import transcript_tokens
from tinyaudio.bench.records import child_main, clip_records, peak_rss_mb


def run_prompt(og, model, prompt_tokens: int, new_tokens: int) -> tuple[float, ...]:
    params = og.GeneratorParams(model)
    length = prompt_tokens + new_tokens
    params.set_search_options(max_length=length, min_length=length, do_sample=False)
    generator = og.Generator(model, params)
    ids = np.random.default_rng(0).integers(1000, 100_000, prompt_tokens).astype(np.int32)
    started = time.perf_counter()
    generator.append_tokens(ids)
    generator.generate_next_token()
    first = time.perf_counter()
    for _ in range(new_tokens - 1):
        generator.generate_next_token()
    done = time.perf_counter()
    return 0.0, first - started, done - first, prompt_tokens, new_tokens


def measure(job: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime_genai as og

    started = time.perf_counter()
    config = og.Config(job["model_dir"])
    options = {"intra_op_num_threads": job["threads"], "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(config)
    result: dict[str, Any] = {"load_s": time.perf_counter() - started}
    result["rss_loaded_mb"] = peak_rss_mb()
    run_prompt(og, model, 8, 4)  # warm-up
    prompts = dict(zip(job["seconds"], job["prompt_tokens"], strict=True))
    result["clips"] = clip_records(
        job["seconds"],
        job["repeats"],
        lambda s: run_prompt(og, model, prompts[s], transcript_tokens(s)),
    )
    return result


if __name__ == "__main__":
    child_main(measure)
