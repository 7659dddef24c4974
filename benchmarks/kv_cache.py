"""Decode speed of the in-place KV cache (IO binding) against a naive run loop, on one bundle.

    python benchmarks/kv_cache.py BUNDLE [--prompt 100] [--steps 32] [--threads 2]

The naive loop is what a straightforward onnxruntime app does: session.run with numpy inputs,
then np.concatenate the new keys/values onto the cache (a copy of the whole cache per layer per
token, plus fresh output arrays every step). Same graph, same tokens; only the loop differs.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from tinyaudio.runtime.engine import Engine


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
    shape = (1, 0, decoder.kv_heads, decoder.head_dim)
    cache = {name: np.zeros(shape, np.float32) for name in decoder.past_names}

    def run(embeds: np.ndarray) -> np.ndarray:
        outputs = decoder.session.run(None, {"inputs_embeds": embeds, **cache})
        for name, new in zip(decoder.past_names, outputs[1:], strict=True):
            cache[name] = np.concatenate([cache[name], new], axis=1)
        return outputs[0]

    started = time.perf_counter()
    logits = run(prompt)
    prefill = time.perf_counter() - started
    tokens, started = [], time.perf_counter()
    for _ in range(steps):
        tokens.append(int(np.argmax(logits[0])))
        logits = run(engine.embeddings(tokens[-1:])[None])
    return prefill, time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--prompt", type=int, default=100, help="prompt positions")
    parser.add_argument("--steps", type=int, default=32, help="decode steps")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    engine = Engine.from_bundle(args.bundle, threads=args.threads)
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(0)
    hidden = engine.manifest["dims"]["llm_hidden"]
    prompt = (0.02 * rng.standard_normal((1, args.prompt, hidden))).astype(np.float32)
    in_place(engine, prompt, 2)  # warm-up: first-run allocations and prepacking
    results = {"in-place (IO binding)": in_place(engine, prompt, args.steps)}
    results["naive run + concatenate"] = naive(engine, prompt, args.steps)
    tokens = {tuple(r[2]) for r in results.values()}
    print(f"bundle {args.bundle} ({engine.manifest['precision']}), {args.threads} threads, "
          f"prompt {args.prompt}, {args.steps} steps, same tokens: {len(tokens) == 1}")  # fmt: skip
    base = args.steps / results["naive run + concatenate"][1]
    print("| loop | prefill tok/s | decode tok/s | decode vs naive |\n|---|---|---|---|")
    for name, (prefill, decode, _) in results.items():
        rate = args.steps / decode
        print(f"| {name} | {args.prompt / prefill:.0f} | {rate:.1f} | {rate / base:.2f}x |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS: {loaded_mb:.0f} MB after loading the bundle, {peak_mb:.0f} MB after both loops"
    )


if __name__ == "__main__":
    main()
