"""Accuracy on real recordings: a model through PyTorch and its FP32 / INT8 / INT4 bundles, beside
Whisper tiny.en itself (its pretrained encoder's own model, via faster-whisper).

    python benchmarks/real_wer.py [--model NAME] [-o benchmarks/real] [--rebuild]

The recordings are tests/data/audio/transcripts.tsv: every LibriVox utterance of Debian's
pocketsphinx-testdata, JFK's inaugural line and a read Beckett quotation (none was trained on).
Everything decodes greedily (faster-whisper with beam 1, no previous-text conditioning) and is
scored with Whisper's English normaliser. The INT8/INT4 bundles are quantized with these
recordings as gate audio. Writes real_wer.json (scores, every transcript), real_wer.md (the table
and the targets) and real_wer.png; exits with status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinyaudio.bench.bundles import build_bundles
from tinyaudio.bench.wer import english_normalizer, read_transcripts, score, transcribers
from tinyaudio.errors import TinyAudioError, run_cli
from tinyaudio.progress import Progress
from tinyaudio.registry import load_registry
from tinyaudio.runtime.audio import load_audio

RECORDINGS = Path(__file__).resolve().parents[1] / "tests" / "data" / "audio" / "transcripts.tsv"
TEACHER = "whisper-tiny.en"
FP32_BOUND = 15.0  # WER %, issue 17
QUANTIZED_BUDGETS = {"int8": 1.0, "int4": 3.0}  # WER points over FP32


def whisper_tiny_en() -> Callable[[np.ndarray], str]:
    """The pretrained Whisper tiny.en (faster-whisper's CTranslate2 model, hash-checked) as is."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise TinyAudioError(
            "the Whisper row needs faster-whisper: pip install 'tinyaudio[bench]'"
        ) from None
    from tinyaudio.export.packaged import WHISPER_TINY_EN, verified_file

    model = WhisperModel(str(verified_file(WHISPER_TINY_EN).parent), device="cpu",
                         compute_type="float32", cpu_threads=2)  # fmt: skip

    def transcribe(audio: np.ndarray) -> str:
        segments, _ = model.transcribe(audio, language="en", beam_size=1,
                                       condition_on_previous_text=False)  # fmt: skip
        return " ".join(s.text.strip() for s in segments)

    return transcribe


def target_lines(wer: dict[str, float], identical: int, clips: int) -> list[str]:
    fp32 = wer["fp32"]
    lines = [f"- FP32 WER {fp32:.2f} % (target ≤ {FP32_BOUND:.0f} %): "
             f"{'MET' if fp32 <= FP32_BOUND else 'MISSED'}"]  # fmt: skip
    for precision, budget in QUANTIZED_BUDGETS.items():
        delta = wer[precision] - fp32
        lines.append(f"- {precision.upper()} − FP32: {delta:+.2f} points (target ≤ {budget:.0f}): "
                     f"{'MET' if delta <= budget else 'MISSED'}")  # fmt: skip
    lines.append(f"- FP32 transcript = PyTorch's on {identical} of {clips} recordings: "
                 f"{'MET' if identical == clips else 'MISSED'}")  # fmt: skip
    return lines


def write_report(model: str, results: dict, targets: list[str], output: Path) -> None:
    lines = [
        f"# `{model}` on real recordings (greedy, Whisper's English normaliser)",
        "",
        "| configuration | WER % | CER % | seconds |",
        "|---|---|---|---|",
        *(
            f"| {n} | {r['wer']:.2f} | {r['cer']:.2f} | {r['seconds']:.1f} |"
            for n, r in results.items()
        ),
        "",
        "## Targets",
        "",
        *targets,
        "",
    ]
    (output / "real_wer.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.bar(names, [results[n]["wer"] for n in names],
                  color=["tab:gray" if n == TEACHER else "tab:blue" for n in names])  # fmt: skip
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.axhline(FP32_BOUND, color="tab:red", linestyle="--", linewidth=1, label="FP32 target")
    ax.set_ylabel("WER % (lower is better)")
    ax.set_title(f"{model} on real recordings, beside Whisper tiny.en")
    ax.legend(fontsize=8)
    ax.margins(y=0.2)
    fig.tight_layout()
    fig.savefig(output / "real_wer.png", dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=load_registry().default_model)
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmarks/real"))
    parser.add_argument("--rebuild", action="store_true", help="re-export the cached bundles "
                        "(after retraining the model)")  # fmt: skip
    args = parser.parse_args()
    progress = Progress()
    recordings = read_transcripts(RECORDINGS)
    clips = [(text, load_audio(path)) for path, text in recordings]
    bundles = build_bundles(args.model, progress, args.rebuild, genai=False,
                            gate_audio=[path for path, _ in recordings])  # fmt: skip
    normalizer = english_normalizer()
    runs = transcribers(args.model, bundles) | {TEACHER: whisper_tiny_en()}
    results: dict[str, dict] = {}
    for name, transcribe in runs.items():
        with progress.stage(f"transcribing {len(clips)} recordings with {name}"):
            started = time.perf_counter()
            results[name] = score(transcribe, clips, normalizer)
            results[name]["seconds"] = round(time.perf_counter() - started, 2)
            progress.note(f"WER {results[name]['wer']:.2f} %")
    identical = sum(
        a == b
        for a, b in zip(
            results["pytorch"]["hypotheses"], results["fp32"]["hypotheses"], strict=True
        )
    )
    targets = target_lines({n: r["wer"] for n, r in results.items()}, identical, len(clips))
    args.output.mkdir(parents=True, exist_ok=True)
    record = {"model": args.model, "results": results,
              "recordings": [{"file": str(p.relative_to(RECORDINGS.parent)), "text": t}
                             for p, t in recordings]}  # fmt: skip
    (args.output / "real_wer.json").write_text(json.dumps(record, indent=1))
    write_report(args.model, results, targets, args.output)
    print((args.output / "real_wer.md").read_text())
    return 1 if any(line.endswith("MISSED") for line in targets) else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
