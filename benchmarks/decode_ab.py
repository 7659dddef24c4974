"""Our INT4 decoder against onnxruntime-genai's runtime on its INT4 build of the same weights, in
one process and interleaved: each round decodes the same number of tokens after the same prompt
length with both, alternating which goes first, so the ratio of the two is immune to the drift
of a shared VM (two `tinyaudio bench` runs of the same code gave 1.11x and 0.87x).

    python benchmarks/decode_ab.py INT4_BUNDLE GENAI_DIR [--positions 142 392] [--rounds 7]

Ours: the runtime's in-place loop over prompt embeddings of that length; genai: token ids of that
length through og.Generator. Reports, per prompt length, the median tok/s of each and the median
of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime import in_place

from tinyaudio.bench.measure_genai import run_prompt
from tinyaudio.runtime.engine import Engine


def ours(engine: Engine, positions: int, tokens: int) -> float:
    rng = np.random.default_rng(positions)
    prompt = engine.embeddings(rng.integers(1000, 100_000, positions))[None]
    _, decode, _ = in_place(engine, prompt, tokens)
    return tokens / decode


def theirs(og, model, positions: int, tokens: int) -> float:
    _, _, decode, _, new = run_prompt(og, model, positions, tokens + 1)
    return (new - 1) / decode  # the first new token is the prefill's


def main() -> None:
    import onnxruntime_genai as og

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("genai")
    parser.add_argument("--positions", type=int, nargs="+", default=[142, 392])
    parser.add_argument("--tokens", type=int, default=32, help="decode steps per run")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    engine = Engine.from_bundle(args.bundle, threads=args.threads)
    config = og.Config(args.genai)
    options = {"intra_op_num_threads": args.threads, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(config)
    ours(engine, 16, 4), theirs(og, model, 16, 4)  # warm-up
    print(f"{args.threads} threads, {args.tokens} tokens per run, {args.rounds} interleaved "
          "rounds\n")  # fmt: skip
    print("| prompt positions | ours tok/s | genai tok/s | ours ÷ genai (median of rounds) "
          "| range of the ratio |")  # fmt: skip
    print("|---|---|---|---|---|")
    ours_rate = {}
    for positions in args.positions:
        pairs = []
        for round_ in range(args.rounds):
            rates = [0.0, 0.0]
            for side in (0, 1) if round_ % 2 == 0 else (1, 0):
                rates[side] = (ours(engine, positions, args.tokens) if side == 0
                               else theirs(og, model, positions, args.tokens))  # fmt: skip
            pairs.append(rates)
            print(f"  {positions} positions, round {round_ + 1}: ours {rates[0]:.1f}, genai "
                  f"{rates[1]:.1f}", file=sys.stderr, flush=True)  # fmt: skip
        ratios = [a / b for a, b in pairs]
        ours_rate[positions] = statistics.median(a for a, _ in pairs)
        print(f"| {positions} | {ours_rate[positions]:.1f} "
              f"| {statistics.median(b for _, b in pairs):.1f} | {statistics.median(ratios):.2f} "
              f"| {min(ratios):.2f}–{max(ratios):.2f} |", flush=True)  # fmt: skip
    shortest, longest = min(args.positions), max(args.positions)
    print(f"\nours at {longest} positions ÷ ours at {shortest}: "
          f"{ours_rate[longest] / ours_rate[shortest]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
