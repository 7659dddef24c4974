"""`tinyaudio bench`: build the graphs once, measure every configuration in its own process, then
write bench.json, bench.md and bench.png."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyaudio.bench.bundles import GENAI, PRECISIONS, build_bundles, installed
from tinyaudio.bench.clips import TOKENS_PER_AUDIO_SECOND
from tinyaudio.bench.machine import describe_machine
from tinyaudio.bench.report import markdown, plot
from tinyaudio.bundle import OutputKind, check_output, writing_directory
from tinyaudio.errors import TinyAudioError
from tinyaudio.progress import Progress

FULL_MODEL = "glmasr-qwen3-0.6b-random"
QUICK_MODEL = "tiny-random"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "jfk.wav"
# Table order: the upstream baseline first, then peers, then ours.
ORDER = (
    "pytorch-fp32",
    "pytorch-bnb4",
    GENAI,
    "fp32-exact",
    "fp32-fast",
    "int8-exact",
    "int8-fast",
    "int4-exact",
    "int4-fast",
)
RESULT_FILES = {"bench.json", "bench.md", "bench.png"}
RESULTS = OutputKind(
    "tinyaudio bench result", lambda d: RESULT_FILES if (d / "bench.json").is_file() else None
)


@dataclass
class Run:
    name: str
    module: str  # the measuring child, tinyaudio.bench.<module>
    job: dict[str, Any]
    needs: tuple[str, ...] = ()  # importable modules; missing ones skip the run
    facts: dict[str, Any] = field(default_factory=dict)  # size, decode bound, ...


def _megabytes(*paths: Path) -> float:
    return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file()) / 2**20


def plan(model: str, bundles: dict[str, Path], common: dict[str, Any], bandwidth: float):
    """Every configuration, ours first (genai reuses our prompt lengths), PyTorch last."""
    runs = []
    for precision in PRECISIONS:
        bundle = bundles[precision]
        decoder_bytes = (bundle / "decoder.onnx.data").stat().st_size
        for mode in ("exact", "fast"):
            runs.append(
                Run(
                    f"{precision}-{mode}",
                    "measure_runtime",
                    {**common, "bundle": str(bundle), "exact": mode == "exact"},
                    facts={
                        "size_mb": _megabytes(bundle),
                        "decode_bound_tok_s": bandwidth * 1e9 / decoder_bytes,
                    },
                )
            )
    if GENAI in bundles:
        genai = bundles[GENAI]
        weights = (genai / "model.onnx.data").stat().st_size
        runs.append(
            Run(
                GENAI,
                "measure_genai",
                {**common, "model_dir": str(genai)},
                needs=("onnxruntime_genai",),
                facts={
                    "size_mb": _megabytes(genai),
                    "decoder_only": True,
                    "decode_bound_tok_s": bandwidth * 1e9 / weights,
                },
            )
        )
    source = json.loads((bundles["fp32"] / "manifest.json").read_text())["model"]
    on_disk = [Path(source[k]) for k in ("checkpoint", "audio_model_id", "text_model_id")]
    size = _megabytes(*on_disk) if all(p.is_dir() for p in on_disk) else None
    for name, bnb in (("pytorch-fp32", False), ("pytorch-bnb4", True)):
        runs.append(
            Run(
                name,
                "measure_pytorch",
                {**common, "model": model, "bnb_4bit": bnb},
                needs=("torch", "transformers") + (("bitsandbytes",) if bnb else ()),
                facts={"size_mb": size},
            )
        )
    return runs


def measure_in_child(run: Run) -> dict[str, Any]:
    """One configuration in a fresh interpreter (its own peak RSS), or why it did not run."""
    result = {"name": run.name, **run.facts}
    missing = [m for m in run.needs if not installed(m)]
    if missing:
        return {**result, "status": "skipped", "reason": f"{', '.join(missing)} not installed"}
    command = [sys.executable, "-m", f"tinyaudio.bench.{run.module}", json.dumps(run.job)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return {**result, "status": "failed", "reason": lines[-1][:200]}
    return {**result, **json.loads(done.stdout.strip().splitlines()[-1]), "status": "ok"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench",
        help="speed, memory and size of every runtime, side by side",
        description=__doc__.splitlines()[0],
    )
    bench.add_argument("--model", help=f"preset or checkpoint (default {FULL_MODEL})")
    bench.add_argument(
        "--quick",
        action="store_true",
        help=f"the {QUICK_MODEL} preset: proves the harness in a minute",
    )
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument(
        "--repeats", type=int, default=2, help="runs per clip; the fastest counts (default 2)"
    )
    bench.add_argument(
        "--seconds",
        type=float,
        nargs="+",
        default=[5.0, 10.0, 30.0],
        help="clip lengths (default 5 10 30)",
    )
    bench.add_argument(
        "--audio", type=Path, help="speech to cut the clips from (default samples/jfk.wav, looped)"
    )
    bench.add_argument("--only", nargs="+", choices=ORDER, help="measure only these")
    bench.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("bench-results"),
        help="directory for bench.json, bench.md, bench.png",
    )
    bench.add_argument("--force", action="store_true", help="replace an existing output")
    bench.add_argument("--rebuild", action="store_true", help="rebuild the cached graphs")
    bench.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> None:
    model = args.model or (QUICK_MODEL if args.quick else FULL_MODEL)
    audio = args.audio or SAMPLE
    if not audio.is_file():
        raise TinyAudioError(f"no speech to benchmark with: {audio} does not exist (use --audio)")
    if args.threads < 1 or args.repeats < 1 or min(args.seconds) <= 0 or max(args.seconds) > 30:
        raise TinyAudioError("--threads and --repeats must be ≥ 1, --seconds between 0 and 30")
    output = args.output.expanduser().absolute()
    check_output(output, args.force, RESULTS)
    progress = Progress()
    with progress.stage("measuring the machine"):
        machine = describe_machine(args.threads)
    bundles = build_bundles(model, progress, args.rebuild)
    common = {
        "threads": args.threads,
        "seconds": sorted(args.seconds),
        "audio": str(audio),
        "repeats": args.repeats,
    }
    runs = [
        r
        for r in plan(model, bundles, common, machine["memory_bandwidth_gbs"])
        if not args.only or r.name in args.only
    ]
    report = {
        "model": model,
        "machine": machine,
        "seconds": common["seconds"],
        "tokens_per_second": TOKENS_PER_AUDIO_SECOND,
        "repeats": args.repeats,
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
        "results": {},
    }
    results = report["results"]
    for run in runs:
        if run.name == GENAI:  # the same prompt lengths as our runtime's
            ours = next((r for r in results.values() if r["status"] == "ok"), None)
            if ours is None:
                results[run.name] = {
                    "name": run.name,
                    "status": "skipped",
                    "reason": "no runtime result to take prompt lengths from",
                }
                continue
            run.job["prompt_tokens"] = [c["prompt_tokens"] for c in ours["clips"]]
        with progress.stage(f"{run.name}: {len(common['seconds'])} clips"):
            results[run.name] = measure_in_child(run)
        if results[run.name]["status"] != "ok":
            progress.note(f"{results[run.name]['status']}: {results[run.name]['reason']}")
    report["results"] = {name: results[name] for name in ORDER if name in results}
    table = markdown(report)
    with writing_directory(output, args.force, RESULTS) as work:
        (work / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
        (work / "bench.md").write_text(table)
        plot(report, work / "bench.png")
    print(table)
    print(f"wrote {output}/bench.json, bench.md, bench.png")
