"""PyTorch reference: what upstream's 30 s padding costs, padded vs unpadded, side by side.

    python benchmarks/reference_modes.py [--model glmasr-qwen3-0.6b-random] [--threads 2]

Times the encoder (+ projector) and the greedy decode separately for 5, 10 and 30 s clips in both
modes, in one process, and prints a markdown table of ratios. This is the baseline the ONNX
runtime is compared with; the full multi-runtime harness is `tinyaudio bench`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tinyaudio.bench.records import peak_rss_mb
from tinyaudio.export.loader import load_model
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.runtime.lengths import SAMPLE_RATE


def _clip(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return (tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def measure(transcriber: ReferenceTranscriber, audio: np.ndarray, padded: bool, tokens: int):
    started = time.perf_counter()
    features, mel_length = transcriber.features(audio, padded)
    rows = transcriber.audio_embeddings(features, mel_length)
    encode = time.perf_counter() - started
    result = transcriber.generate(rows, features.shape[-1], max_new_tokens=tokens)
    total = time.perf_counter() - started
    return {"encode_s": encode, "total_s": total, "generated": len(result.token_ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="glmasr-qwen3-0.6b-random")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per clip")
    parser.add_argument("--seconds", type=float, nargs="+", default=[5, 10, 30])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    transcriber = ReferenceTranscriber(load_model(args.model))
    load_s = time.perf_counter() - started
    transcriber.transcribe(_clip(1.0), padded=False, max_new_tokens=2)  # warm-up

    rows = []
    for seconds in args.seconds:
        audio = _clip(seconds)
        padded = measure(transcriber, audio, True, args.tokens)
        unpadded = measure(transcriber, audio, False, args.tokens)
        rows.append({"seconds": seconds, "padded": padded, "unpadded": unpadded})
        print(f"{seconds:>5.0f} s clip measured", flush=True)
    peak_gb = peak_rss_mb() / 1024

    print(f"\nmodel {args.model}, {args.threads} threads, load {load_s:.1f} s, "
          f"peak RSS {peak_gb:.2f} GB, {args.tokens} new tokens per clip\n")  # fmt: skip
    print("| clip | encoder padded (s) | encoder unpadded (s) | padded/unpadded | "
          "RTF padded | RTF unpadded |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for row in rows:
        p, u, s = row["padded"], row["unpadded"], row["seconds"]
        print(f"| {s:.0f} s | {p['encode_s']:.2f} | {u['encode_s']:.2f} | "
              f"{p['encode_s'] / u['encode_s']:.1f}x | {p['total_s'] / s:.2f} | "
              f"{u['total_s'] / s:.2f} |")  # fmt: skip
    if args.json:
        report = {"model": args.model, "threads": args.threads, "load_s": load_s,
                  "peak_rss_gb": peak_gb, "rows": rows}  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
