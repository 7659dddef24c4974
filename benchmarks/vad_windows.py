"""Long recordings: back-to-back windows cut at the quietest moment (the default) against Silero
VAD windows (`--vad`), side by side in one run.

    python benchmarks/vad_windows.py [--sentences 60] [-o benchmarks/vad_windows]

The recording is built here: held-out demo sentences (espeak-ng voices the demo model never
heard, recipe/demo/data.py) 0.6-1.5 s apart, and after every eighth a 4-10 s stretch of silence
or brown noise (-45 to -30 dBFS), as in a meeting or a dictation with breaks. Both ways
transcribe it with the demo INT8 bundle (2 threads, best of 3 wall times); reported: WER, wall
time, windows, seconds of audio decoded. Writes results.json and README.md.

The demo model was trained on single sentences of 3-8 words: a 30 s window of several sentences
is outside what it learnt, so its WER with back-to-back windows says as much about the model as
about the windowing. The wall time and the audio skipped do not depend on that.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tinyaudio.bench.bundles import build_bundles
from tinyaudio.bench.wer import error_rates
from tinyaudio.errors import run_cli
from tinyaudio.progress import Progress
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.transcribe import Transcriber

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the recipe, in a source checkout
from recipe.demo.data import held_out_clips  # noqa: E402

REPEATS = 3


def brown_noise(rng: np.random.Generator, samples: int, dbfs: float) -> np.ndarray:
    noise = np.cumsum(rng.standard_normal(samples))
    noise -= np.convolve(noise, np.ones(1601) / 1601, mode="same")  # no DC drift
    return (noise / np.sqrt(np.mean(noise**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def recording(sentences: int, seed: int = 5) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    parts, texts = [], []
    for index, (text, audio) in enumerate(held_out_clips("test_unseen", sentences)):
        parts.append(audio)
        texts.append(text)
        gap = int(rng.uniform(0.6, 1.5) * SAMPLE_RATE)
        parts.append(np.zeros(gap, np.float32))
        if index % 8 == 7:
            long = int(rng.uniform(4, 10) * SAMPLE_RATE)
            quiet = rng.random() < 0.5
            parts.append(np.zeros(long, np.float32) if quiet else
                         brown_noise(rng, long, rng.uniform(-45, -30)))  # fmt: skip
    return np.concatenate(parts), " ".join(texts)


def measure(transcriber: Transcriber, audio: np.ndarray, vad: bool) -> dict:
    walls = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = transcriber.transcribe(audio, SAMPLE_RATE, vad=vad)
        walls.append(time.perf_counter() - started)
    decoded = [s for s in result.segments if s.token_ids]
    return {
        "wall_s": round(min(walls), 3),
        "windows": len(result.segments),
        "audio_decoded_s": round(sum(s.end - s.start for s in decoded), 1),
        "text": result.text,
        "timings": result.timings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=60)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks/vad_windows")
    args = parser.parse_args()

    def run() -> None:
        progress = Progress()
        bundle = build_bundles("demo", progress, genai=False)["int8"]
        audio, truth = recording(args.sentences)
        seconds = len(audio) / SAMPLE_RATE
        transcriber = Transcriber.from_bundle(bundle, threads=2)
        results = {}
        for name, vad in (("quietest-cut windows", False), ("Silero VAD windows", True)):
            with progress.stage(f"{name}: {seconds:.0f} s of audio, best of {REPEATS}"):
                results[name] = measure(transcriber, audio, vad)
                wer, _ = error_rates([truth], [results[name]["text"]])
                results[name]["wer"] = round(100 * wer, 2)
                progress.note(f"WER {results[name]['wer']} %, {results[name]['wall_s']} s")
        args.output.mkdir(parents=True, exist_ok=True)
        body = {"audio_seconds": round(seconds, 1), "sentences": args.sentences,
                "truth": truth, "results": results}  # fmt: skip
        (args.output / "results.json").write_text(json.dumps(body, indent=1) + "\n")
        base = results["quietest-cut windows"]["wall_s"]
        lines = [
            "# Long recording: quietest-cut windows vs Silero VAD windows (demo INT8, 2 threads)",
            "",
            f"{seconds:.0f} s: {args.sentences} held-out demo sentences 0.6-1.5 s apart, a 4-10 s "
            "stretch of silence or brown noise after every eighth. Best of "
            f"{REPEATS} wall times; WER over the whole recording.",
            "",
            "| windows | WER % | wall s | × the default's time | windows | audio decoded s "
            "| real-time factor |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in results.items():
            lines.append(
                f"| {name} | {r['wer']} | {r['wall_s']} | {r['wall_s'] / base:.2f} | "
                f"{r['windows']} | {r['audio_decoded_s']} | {r['wall_s'] / seconds:.4f} |"
            )
        lines += ["", __doc__.split("\n\n")[-1].strip(), ""]
        (args.output / "README.md").write_text("\n".join(lines))

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
