"""Peak memory and time of `tinyaudio-export` at real size, stage by stage, with a plot.

    python benchmarks/export_memory.py [--models glmasr-qwen3-0.6b-random glmasr-qwen3-1.7b-random]
        [--precisions fp32 int8 int4] [-o benchmarks/results-export-memory] [--replot]

Each export runs as its own child process. Its exact peak RSS comes from the kernel (wait4's
ru_maxrss); a sampler reads the RSS four times a second for the plot, and the export's own
progress lines (read from its stderr) mark where each stage began. The preset checkpoint is built
first, in a child of its own, so its one-off cost is not counted (a user downloads it instead).
Writes results.json and memory.png into the output directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

PRESETS = ("glmasr-qwen3-0.6b-random", "glmasr-qwen3-1.7b-random")
TARGETS_GB = {"glmasr-qwen3-0.6b-random": 6.0, "glmasr-qwen3-1.7b-random": 10.0}
BIN = Path(sys.executable).parent
OUTPUT = Path("benchmarks/results-export-memory")


def materialize(model: str) -> None:
    code = "import sys; from tinyaudio.export.loader import resolve_checkpoint as r; r(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, model], check=True)


def export(model: str, precision: str, work: Path) -> dict:
    """Run one export; its peak RSS, wall time, RSS samples and stage starts."""
    command = [str(BIN / "tinyaudio-export"), "--model", model, f"--{precision}",
               "-o", str(work / f"{model}-{precision}"), "--force"]  # fmt: skip
    begun = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    samples: list[tuple[float, float]] = []
    stages: list[tuple[float, str]] = []
    done = threading.Event()

    def sample() -> None:
        process = psutil.Process(child.pid)
        while not done.wait(0.25):
            try:
                samples.append((time.perf_counter() - begun, process.memory_info().rss / 1e9))
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log = []
    for line in child.stderr:
        log.append(line.rstrip())
        if line.startswith("▸ "):
            stages.append((time.perf_counter() - begun, line[2:].strip().removesuffix(" ...")))
        print(f"    {line.rstrip()}", file=sys.stderr, flush=True)
    _, status, usage = os.wait4(child.pid, 0)
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(log[-5:]))
    return {
        "model": model,
        "precision": precision,
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2),  # ru_maxrss is in KiB on Linux
        "seconds": round(time.perf_counter() - begun, 1),
        "stages": [{"start_s": round(t, 1), "stage": s} for t, s in stages],
        "samples": [[round(t, 2), round(gb, 3)] for t, gb in samples],
    }


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 2.6 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        t, gb = zip(*run["samples"], strict=True) if run["samples"] else ((), ())
        ax.plot(t, gb, lw=1.2)
        target = TARGETS_GB.get(run["model"])
        if target and run["precision"] == "int4":
            ax.axhline(target, color="red", ls="--", lw=0.8, label=f"target {target:g} GB")
            ax.legend(loc="upper right", fontsize=7)
        for stage in run["stages"]:
            ax.axvline(stage["start_s"], color="grey", lw=0.5)
            label = " ".join(w for w in stage["stage"].split(" (")[0].split() if "/" not in w)
            ax.text(stage["start_s"], 0.03, " " + label[:30], rotation=90, fontsize=6,
                    va="bottom", color="dimgrey", transform=ax.get_xaxis_transform())  # fmt: skip
        ax.set_title(f"{run['model']} → {run['precision']}: peak {run['peak_rss_gb']} GB, "
                     f"{run['seconds']:.0f} s", fontsize=9)  # fmt: skip
        ax.set_ylabel("RSS (GB)")
        ax.set_ylim(0, max(run["peak_rss_gb"], target or 0) * 1.15)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PRESETS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8", "int4"],
                        choices=["fp32", "int8", "int4"])  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument("--replot", action="store_true", help="redraw OUTPUT's results.json")
    args = parser.parse_args()
    if args.replot:
        plot(
            json.loads((args.output / "results.json").read_text())["runs"],
            args.output / "memory.png",
        )
        return
    args.output.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="export-memory-") as work:
        for model in args.models:
            materialize(model)
            for precision in args.precisions:
                print(f"▸ {model} → {precision}", file=sys.stderr, flush=True)
                runs.append(export(model, precision, Path(work)))
                print(f"  peak {runs[-1]['peak_rss_gb']} GB in {runs[-1]['seconds']} s",
                      file=sys.stderr, flush=True)  # fmt: skip
    machine = {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1e9, 1)}
    results = {"machine": machine, "runs": runs}
    (args.output / "results.json").write_text(json.dumps(results, indent=1))
    plot(runs, args.output / "memory.png")
    for run in runs:
        print(f"{run['model']:28} {run['precision']:5} peak {run['peak_rss_gb']:5.2f} GB "
              f"{run['seconds']:6.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
