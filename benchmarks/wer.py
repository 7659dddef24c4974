"""Accuracy of the demo model through the decoder: PyTorch reference, FP32, INT8 and INT4 bundles.

    python benchmarks/wer.py [--count 300] [-o benchmarks/accuracy] [--rebuild]

Held-out sentences spoken by training voices (seen) and by espeak variants never heard in training
(unseen), regenerated exactly as recipe/demo/data.py made them. Every configuration transcribes
the same clips greedily at the real audio length (the mode the model was trained in); fp32-exact
is the FP32 bundle with upstream's 30 s padding (`--exact`). Writes
wer.json (scores and every transcript), wer.md (the table, with the quantization gates) and wer.png;
exits with status 1 if a gate fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tinyaudio.bench.bundles import build_bundles
from tinyaudio.bench.wer import FP32_BOUNDS, QUANTIZED_BUDGETS, score, transcribers
from tinyaudio.errors import TinyAudioError, run_cli
from tinyaudio.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the recipe, in a source checkout
from recipe.demo.data import held_out_clips

SPLITS = {"test_seen": "seen voices", "test_unseen": "unseen voices"}


def gate_lines(results: dict) -> list[str]:
    lines = []
    for split, label in SPLITS.items():
        fp32 = results["fp32"][split]["wer"]
        bound = FP32_BOUNDS[split]
        lines.append(f"- FP32 WER, {label}: {fp32:.2f} % (bound {bound:.0f} %): "
                     f"{'pass' if fp32 <= bound else 'FAIL'}")  # fmt: skip
        for precision in ("int8", "int4"):
            delta, bound = results[precision][split]["wer"] - fp32, QUANTIZED_BUDGETS[precision]
            lines.append(
                f"- {precision.upper()} − FP32, {label}: {delta:+.2f} points "
                f"(bound {bound} points): {'pass' if delta <= bound else 'FAIL'}"
            )
    return lines


def write_report(results: dict, counts: dict, output: Path) -> None:
    header = "| configuration | " + " | ".join(
        f"{label} WER % | {label} CER %" for label in SPLITS.values()
    )
    lines = [
        "# Demo model accuracy through the decoder (greedy, real-length audio)",
        "",
        ", ".join(f"{SPLITS[s]}: {n} held-out sentences" for s, n in counts.items()) + ".",
        "",
        header + " |",
        "|---" * (1 + 2 * len(SPLITS)) + "|",
    ]
    for name, splits in results.items():
        cells = [f"{splits[s]['wer']:.2f} | {splits[s]['cer']:.2f}" for s in SPLITS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Gates", "", *gate_lines(results), ""]
    (output / "wer.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, metric in zip(axes, ("wer", "cer"), strict=True):
        width = 0.8 / len(SPLITS)
        for k, (split, label) in enumerate(SPLITS.items()):
            values = [results[n][split][metric] for n in names]
            bars = ax.bar(np.arange(len(names)) + k * width, values, width, label=label)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(np.arange(len(names)) + width / 2, names)
        ax.set_title(f"{metric.upper()} % (lower is better)")
        ax.margins(y=0.2)
    axes[0].legend(loc="upper left", ncol=2, fontsize=8)
    fig.suptitle("demo model: PyTorch vs our ONNX bundles, held-out sentences")
    fig.tight_layout()
    fig.savefig(output / "wer.png", dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--count", type=int, default=300, help="clips per split (1 to 300)")
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmarks/accuracy"))
    parser.add_argument("--rebuild", action="store_true", help="re-export the cached bundles "
                        "(after retraining the model)")  # fmt: skip
    args = parser.parse_args()
    if not 1 <= args.count <= 300:
        raise TinyAudioError(
            f"--count must be 1 to 300 (each held-out set has 300), got {args.count}"
        )
    progress = Progress()
    with progress.stage(f"speaking {args.count} held-out sentences per split (espeak-ng)"):
        clips = {split: held_out_clips(split, args.count) for split in SPLITS}
    results: dict[str, dict] = {}
    transcripts: dict[str, dict] = {}
    bundles = build_bundles(args.model, progress, args.rebuild, genai=False)
    # fp32-exact: upstream's 30 s padding, which the demo model was not trained with.
    for name, transcribe in transcribers(args.model, bundles, exact=("fp32",)).items():
        with progress.stage(f"transcribing with {name}"):
            started = time.perf_counter()
            scores = {split: score(transcribe, clips[split]) for split in SPLITS}
            progress.note(f"{time.perf_counter() - started:.1f} s")
        results[name] = {s: {"wer": v["wer"], "cer": v["cer"]} for s, v in scores.items()}
        transcripts[name] = {s: v["hypotheses"] for s, v in scores.items()}
    args.output.mkdir(parents=True, exist_ok=True)
    references = {split: [text for text, _ in clips[split]] for split in SPLITS}
    record = {"model": args.model, "results": results, "references": references,
              "transcripts": transcripts}  # fmt: skip
    (args.output / "wer.json").write_text(json.dumps(record, indent=1))
    write_report(results, {s: len(c) for s, c in clips.items()}, args.output)
    report = (args.output / "wer.md").read_text()
    print(report)
    return 1 if "FAIL" in report else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
