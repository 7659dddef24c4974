"""The torch-free runtime on one or more bundles, side by side: encoder time per audio second
(exact and fast front end), prefill and decode speed (the in-place KV loop against a naive run
loop), peak memory, and how often each bundle's tokens agree with the first (FP32) bundle's.

    python benchmarks/runtime.py FP32_BUNDLE INT8_BUNDLE INT4_BUNDLE [--threads 2] [--steps 32]

Each bundle is measured in its own process, so its peak RSS is its own. The naive loop is what a
straightforward onnxruntime app does: session.run with numpy inputs, feeding each step's present
keys/values back as the next step's past (onnxruntime then copies the whole cache into a fresh
output per layer per token). Same graph, same prompt, same tokens; only the loop differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tinyaudio.bench.records import peak_rss_mb
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.engine import Engine
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.transcribe import Transcriber

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "data" / "audio"
CLIPS = ("jfk.wav", "beckett.wav", "two_cities_16k.wav")


def best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def in_place(engine: Engine, prompt: np.ndarray, steps: int) -> tuple[float, float, list[int]]:
    cache = engine.decoder.new_cache(prompt.shape[1] + steps + 1)
    started = time.perf_counter()
    logits = engine.decoder.forward(prompt, cache)
    prefill = time.perf_counter() - started
    tokens, started = [], time.perf_counter()
    for _ in range(steps):
        tokens.append(int(np.argmax(logits[0])))
        logits = engine.decoder.forward(engine.embeddings(tokens[-1:])[None], cache)
    return prefill, time.perf_counter() - started, tokens


def naive(engine: Engine, prompt: np.ndarray, steps: int) -> tuple[float, float, list[int]]:
    decoder = engine.decoder
    shape = (1, decoder.kv_heads, 0, decoder.head_dim)
    cache = {name: np.zeros(shape, np.float32) for name in decoder.past_names}

    def run(embeds: np.ndarray) -> np.ndarray:
        total = cache[decoder.past_names[0]].shape[2] + embeds.shape[1]
        lengths = {"seqlens_k": np.array([total - 1], np.int32),
                   "total_sequence_length": np.array(total, np.int32)}  # fmt: skip
        outputs = decoder.session.run(None, {"inputs_embeds": embeds, **cache, **lengths})
        cache.update(zip(decoder.past_names, outputs[1:], strict=True))
        return outputs[0]

    started = time.perf_counter()
    logits = run(prompt)
    prefill = time.perf_counter() - started
    tokens, started = [], time.perf_counter()
    for _ in range(steps):
        tokens.append(int(np.argmax(logits[0])))
        logits = run(engine.embeddings(tokens[-1:])[None])
    return prefill, time.perf_counter() - started, tokens


def measure(bundle: str, threads: int, steps: int) -> dict:
    """Everything for one bundle, in this process."""
    started = time.perf_counter()
    transcriber = Transcriber.from_bundle(bundle, threads=threads)
    engine = transcriber.engine
    result = {"bundle": bundle, "precision": engine.manifest["precision"]}
    result["load_s"] = time.perf_counter() - started
    result["rss_loaded_mb"] = peak_rss_mb()
    speech = load_audio(AUDIO / "jfk.wav")
    for padded, mode in ((True, "exact"), (False, "fast")):
        features, _ = engine.features(speech, padded=padded)
        seconds = best_of(2, lambda features=features: engine.encode(features))
        result[f"encoder_{mode}_s_per_audio_s"] = seconds / (len(speech) / SAMPLE_RATE)
    features, mel_length = engine.features(speech, padded=False)
    prompt = engine.prompt_embeds(engine.audio_rows(features, mel_length))
    in_place(engine, prompt, 2)  # warm-up: first-run allocations
    loops = {"in_place": in_place(engine, prompt, steps), "naive": naive(engine, prompt, steps)}
    result["prompt_tokens"] = prompt.shape[1]
    for name, (prefill, decode, tokens) in loops.items():
        result[f"{name}_prefill_tok_s"] = prompt.shape[1] / prefill
        result[f"{name}_decode_tok_s"] = steps / decode
        result[f"{name}_tokens"] = tokens
    result["transcripts"] = {}
    for clip in CLIPS:
        started = time.perf_counter()
        transcription = transcriber.transcribe(AUDIO / clip)
        wall = time.perf_counter() - started
        result["transcripts"][clip] = {
            "token_ids": transcription.token_ids,
            "real_time_factor": wall / transcription.timings["audio_seconds"],
        }
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def agreement(tokens: list[int], reference: list[int]) -> float:
    """The fraction of the reference's tokens reproduced before the first difference."""
    same = next(
        (i for i, (a, b) in enumerate(zip(tokens, reference, strict=False)) if a != b), None
    )
    matched = min(len(tokens), len(reference)) if same is None else same
    return matched / max(len(reference), 1)


def report(results: list[dict], threads: int, steps: int) -> None:
    base = results[0]
    print(f"{threads} threads; prompt {base['prompt_tokens']} positions (jfk.wav, fast mode); "
          f"{steps} decode steps; clips: {', '.join(CLIPS)}\n")  # fmt: skip
    print("| bundle | load s | RSS loaded MB | peak RSS MB | encoder s/audio s exact | fast "
          "| prefill tok/s | decode tok/s | naive decode tok/s | in-place/naive "
          "| RTF (jfk) | agreement with first |")  # fmt: skip
    print("|---" * 12 + "|")
    for r in results:
        agree = np.mean([
            agreement(r["transcripts"][c]["token_ids"], base["transcripts"][c]["token_ids"])
            for c in CLIPS
        ])  # fmt: skip
        same_loop = r["in_place_tokens"] == r["naive_tokens"]
        print(
            f"| {r['precision']} | {r['load_s']:.1f} | {r['rss_loaded_mb']:.0f} "
            f"| {r['peak_rss_mb']:.0f} | {r['encoder_exact_s_per_audio_s']:.3f} "
            f"| {r['encoder_fast_s_per_audio_s']:.3f} | {r['in_place_prefill_tok_s']:.0f} "
            f"| {r['in_place_decode_tok_s']:.1f} | {r['naive_decode_tok_s']:.1f} "
            f"| {r['in_place_decode_tok_s'] / r['naive_decode_tok_s']:.2f}x"
            f"{'' if same_loop else ' (tokens differ!)'} "
            f"| {r['transcripts']['jfk.wav']['real_time_factor']:.2f} | {agree:.0%} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=32, help="decode steps per loop")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.bundles[0], args.threads, args.steps)))
        return
    results = []
    for bundle in args.bundles:
        print(f"measuring {bundle} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, bundle, "--one",
                   "--threads", str(args.threads), "--steps", str(args.steps)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout))
    report(results, args.threads, args.steps)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
