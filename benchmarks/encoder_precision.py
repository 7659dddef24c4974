"""The audio encoder at FP32, INT8 (dynamic, as INT8 bundles ship it) and 4-bit weight-only
(MatMulNBits, block 128 as INT4 bundles ship it, accuracy level 4), side by side: encode time for
10 and 30 s of speech, resident memory after load and at peak, and the output's cosine with FP32.
Each encoder runs in its own process, so each memory figure is its own.

    python benchmarks/encoder_precision.py FP32_BUNDLE INT8_BUNDLE [--threads 2] [--block-size 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinyaudio.bench.records import peak_rss_mb
from tinyaudio.quantize import weights
from tinyaudio.quantize.recipes import ENCODER_BLOCK_SIZE
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.features import log_mel
from tinyaudio.runtime.sessions import ENCODER_RUN, create_session

SPEECH = Path(__file__).resolve().parents[1] / "samples" / "jfk.wav"
SECONDS = (10, 30)


def measure(graph: Path, threads: int, outputs: Path) -> dict:
    """One encoder, in this process: times, RSS, and its outputs saved for the comparison."""
    session = create_session(graph, threads, ["CPUExecutionProvider"], arena=True)  # as Engine
    result = {"rss_loaded_mb": peak_rss_mb()}
    audio = load_audio(SPEECH)
    audio = np.tile(audio, -(-max(SECONDS) * 16000 // len(audio)))
    for seconds in SECONDS:
        features, _ = log_mel(audio[: seconds * 16000], session.get_inputs()[0].shape[1], False)
        session.run(None, {"input_features": features}, ENCODER_RUN)  # first run: warm-up
        started = time.perf_counter()
        states = session.run(None, {"input_features": features}, ENCODER_RUN)[0]
        result[f"encode_s_{seconds}"] = time.perf_counter() - started
        np.save(outputs / f"{seconds}.npy", states)
    result["rss_peak_mb"] = peak_rss_mb()
    return result


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path)
    parser.add_argument("int8", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=ENCODER_BLOCK_SIZE)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child: GRAPH OUTPUTS
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one[0]), args.threads, Path(args.one[1]))))
        return
    with tempfile.TemporaryDirectory(dir=args.fp32.parent) as scratch:
        work = Path(scratch)
        (work / "int4").mkdir()
        print("quantizing the encoder to 4 bits ...", file=sys.stderr, flush=True)
        weights.nbits(args.fp32 / "encoder.onnx", work / "int4" / "encoder.onnx", 4,
                      args.block_size, 4, 4)  # fmt: skip
        graphs = {"fp32": args.fp32, "int8 dynamic": args.int8, "4-bit": work / "int4"}
        results = {}
        for name, directory in graphs.items():
            outputs = work / f"out-{name}"
            outputs.mkdir()
            graph = directory / "encoder.onnx"
            command = [
                *(sys.executable, __file__, str(args.fp32), str(args.int8)),
                *("--threads", str(args.threads), "--one", str(graph), str(outputs)),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[name] = json.loads(done.stdout)
            results[name]["cosine"] = min(
                cosine(np.load(outputs / f"{s}.npy"), np.load(work / "out-fp32" / f"{s}.npy"))
                for s in SECONDS
            )
    print(f"\n{args.threads} threads; {SPEECH.name} looped; fast mode (real frames only)\n")
    print("| encoder | 10 s | 30 s | RSS after load MB | peak MB | cosine vs FP32 |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['encode_s_10']:.2f} s | {r['encode_s_30']:.2f} s "
              f"| {r['rss_loaded_mb']:.0f} | {r['rss_peak_mb']:.0f} "
              f"| {r['cosine']:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
