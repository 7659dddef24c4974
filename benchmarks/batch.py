"""Batch throughput of `tinyaudio transcribe DIR --jobs N`: wall time for a folder of recordings.

    python benchmarks/batch.py BUNDLE [--jobs 1 2] [--copies 4] [--ray] [-o benchmarks/batch]

The folder is the repository's real recordings (tests/data/audio/transcripts.tsv), each copied
``--copies`` times. Every run is the command a user types (its own process, model loads
included), writing txt files with --overwrite. Reports seconds of audio per second of wall time
and the speed-up over one job; writes batch.json and batch.md. ``--ray`` adds the same runs
with ``--ray ADDRESS --threads 1`` on a local Ray cluster (``ray start --head``, as many CPUs as
the machine has) started before and stopped after, so its start-up is not in the times (the
actors' start and model loads are).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from tinyaudio.bench.wer import read_transcripts

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = REPO / "tests" / "data" / "audio" / "transcripts.tsv"
BIN = Path(sys.executable).parent


def start_ray(temp: Path) -> str:
    """A local Ray head on a free port; its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={port}",
                    "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
                    "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True)  # fmt: skip
    return f"127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--ray", action="store_true", help="also on a local Ray cluster")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinyaudio-batch-") as work:
        folder = Path(work) / "in"
        folder.mkdir()
        seconds = 0.0
        for copy in range(args.copies):
            for path, _ in read_transcripts(RECORDINGS):
                shutil.copy(path, folder / f"{copy}-{Path(path).name}")
                seconds += sf.info(str(path)).duration
        files = len(list(folder.iterdir()))
        rows = []
        ways = [("processes", [])]
        if args.ray:
            ways.append(("ray", ["--ray", start_ray(Path(work) / "ray"), "--threads", "1"]))
        try:
            for way, extra in ways:
                for jobs in args.jobs:
                    command = [sys.executable, "-m", "tinyaudio.cli", "transcribe",
                               str(args.bundle), str(folder), "--output-dir",
                               str(Path(work) / "out"), "--output-format", "txt", "--overwrite",
                               "--jobs", str(jobs), *extra]  # fmt: skip
                    started = time.perf_counter()
                    subprocess.run(command, check=True, cwd=REPO)
                    wall = time.perf_counter() - started
                    rows.append({"way": way, "jobs": jobs, "wall_s": round(wall, 1),
                                 "audio_per_wall": round(seconds / wall, 2)})  # fmt: skip
                    print(f"{way}, {jobs} jobs: {wall:.1f} s", file=sys.stderr)
        finally:
            if args.ray:
                subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True)
    base = rows[0]["wall_s"]
    lines = [
        "# Batch throughput (`tinyaudio transcribe DIR --jobs N`)",
        "",
        f"Bundle `{args.bundle}`; {files} files, {seconds:.0f} s of audio; model loads included.",
        "",
        "| way | jobs | wall (s) | × real time | speed-up over 1 process |",
        "|---|---|---|---|---|",
        *(
            f"| {r['way']} | {r['jobs']} | {r['wall_s']} | {r['audio_per_wall']} | "
            f"{base / r['wall_s']:.2f} |"
            for r in rows
        ),
    ]
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "batch.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.output / "batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
