"""MatMulNBits settings for the 4-bit decoder, side by side in one run: accuracy level 0 (float
compute) vs 4 (int8 compute) and block 32 / 64 / 128. For each, the FP32 bundle's decoder is
quantized as `tinyaudio-quantize --int4`'s first recipe does (all 4-bit), then measured on the
same prompt: prefill tok/s, decode tok/s after ~140 and ~390 positions, the logits' cosine with
FP32 and the greedy tokens' agreement with FP32 (level 4 is reported to flip Qwen3-0.6B's
argmax: onnxruntime issue 29849).

    python benchmarks/matmul_nbits.py FP32_BUNDLE [--threads 2] [--steps 24] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tinyaudio.bundle import read_manifest
from tinyaudio.quantize import weights
from tinyaudio.runtime.decoder import Decoder
from tinyaudio.runtime.embeddings import TokenEmbeddings
from tinyaudio.runtime.sessions import create_session

SETTINGS = [(32, 4), (64, 4), (128, 4), (32, 0), (64, 0), (128, 0)]  # (block, accuracy level)
POSITIONS = (140, 390)


def run(decoder: Decoder, embed: TokenEmbeddings, prompt: np.ndarray, steps: int) -> dict:
    """Prefill ``prompt`` then ``steps`` greedy tokens: times, tokens and the first logits."""
    cache = decoder.new_cache(prompt.shape[1] + steps + 1)
    started = time.perf_counter()
    logits = decoder.forward(prompt, cache)
    prefill = time.perf_counter() - started
    first, tokens = logits.copy(), []
    started = time.perf_counter()
    for _ in range(steps):
        tokens.append(int(np.argmax(logits[0])))
        logits = decoder.forward(embed(tokens[-1:])[None], cache)
    return {"prefill_s": prefill, "decode_s": time.perf_counter() - started,
            "tokens": tokens, "logits": first}  # fmt: skip


def measure(decoder: Decoder, embed: TokenEmbeddings, prompts: dict, steps: int) -> dict:
    run(decoder, embed, prompts[POSITIONS[0]][:, :8], 2)  # warm-up
    return {length: min((run(decoder, embed, prompt, steps) for _ in range(2)),
                        key=lambda r: r["prefill_s"] + r["decode_s"])
            for length, prompt in prompts.items()}  # fmt: skip


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))


def agreement(tokens: list[int], reference: list[int]) -> float:
    same = next((i for i, (a, b) in enumerate(zip(tokens, reference, strict=True)) if a != b),
                len(reference))  # fmt: skip
    return same / len(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="an FP32 bundle")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=24, help="decode steps per prompt")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    manifest = read_manifest(args.bundle)
    dims, source = manifest["dims"], args.bundle / manifest["graphs"]["decoder"]["file"]
    embed = TokenEmbeddings(args.bundle, manifest["embeddings"])
    rng = np.random.default_rng(0)  # ordinary text-token rows, as a prompt's would be
    ids = lambda n: rng.integers(min(1000, embed.rows // 2), embed.rows, n)  # noqa: E731
    prompts = {n: embed(ids(n))[None] for n in POSITIONS}

    def decoder_at(path: Path) -> Decoder:
        return Decoder(create_session(path, args.threads, ["CPUExecutionProvider"]), dims)

    reference = measure(decoder_at(source), embed, prompts, args.steps)
    rows = []
    for block, level in SETTINGS:
        with tempfile.TemporaryDirectory(dir=args.bundle.parent) as scratch:
            target = Path(scratch) / "decoder.onnx"
            weights.nbits(source, target, 4, block, level, lm_head_bits=4)
            result = measure(decoder_at(target), embed, prompts, args.steps)
        row = {"block_size": block, "accuracy_level": level}
        for length, r in result.items():
            base = reference[length]
            row[f"prefill_tok_s_{length}"] = length / r["prefill_s"]
            row[f"decode_tok_s_{length}"] = args.steps / r["decode_s"]
            row[f"logits_cosine_{length}"] = cosine(r["logits"], base["logits"])
            row[f"agreement_{length}"] = agreement(r["tokens"], base["tokens"])
        rows.append(row)
        print(f"block {block} level {level}: done", flush=True)
    lengths = " and ".join(map(str, POSITIONS))
    print(f"\n{args.threads} threads; prompts of {lengths} positions; {args.steps} greedy steps; "
          "ratios against block 32, level 4 (the int4 default)\n")  # fmt: skip
    short, long = POSITIONS
    print(f"| block | level | prefill tok/s ({short}) | decode tok/s at {short} | at {long} "
          f"| decode vs default | logits cosine vs FP32 | tokens agreeing with FP32 |")  # fmt: skip
    print("|---" * 8 + "|")
    default = rows[0]
    for row in rows:
        ratio = row[f"decode_tok_s_{short}"] / default[f"decode_tok_s_{short}"]
        agree = np.mean([row[f"agreement_{n}"] for n in POSITIONS])
        worst = min(row[f"logits_cosine_{n}"] for n in POSITIONS)
        print(f"| {row['block_size']} | {row['accuracy_level']} "
              f"| {row[f'prefill_tok_s_{short}']:.0f} | {row[f'decode_tok_s_{short}']:.1f} "
              f"| {row[f'decode_tok_s_{long}']:.1f} | {ratio:.2f}× | {worst:.4f} "
              f"| {agree:.0%} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
