"""Where a bundle's resident memory goes, stage by stage: each graph loaded alone, then the whole
engine through a sequence of clips (features, encoder + projector, prefill, decode), in fresh
processes (Linux). Shows what a peak RSS is made of and whether memory creeps from clip to clip.

    python benchmarks/runtime_memory.py BUNDLE [--seconds 5 5 30 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tinyaudio.bench.clips import speech_clip, transcript_tokens
from tinyaudio.bench.records import peak_rss_mb, rss_mb
from tinyaudio.bundle import read_manifest
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.engine import GRAPHS, Engine

SPEECH = Path(__file__).resolve().parents[1] / "samples" / "jfk.wav"


def measure(bundle: Path, graphs: tuple[str, ...], seconds: list[float], threads: int) -> list:
    """[(stage, RSS MB, peak RSS MB so far)] in this process."""
    stages = [("imports", rss_mb(), peak_rss_mb())]
    engine = Engine.load(bundle, read_manifest(bundle), threads, graphs=graphs)
    stages.append(("loaded", rss_mb(), peak_rss_mb()))
    if set(graphs) != set(GRAPHS):
        return stages
    speech = load_audio(SPEECH)
    for length in seconds:
        features, mel_length = engine.features(speech_clip(speech, length), padded=False)
        rows = engine.audio_rows(features, mel_length)
        stages.append((f"{length:g} s: encoder + projector", rss_mb(), peak_rss_mb()))
        steps = engine.decode(rows, transcript_tokens(length), stop=False)
        next(steps)
        stages.append((f"{length:g} s: prefill", rss_mb(), peak_rss_mb()))
        for _ in steps:
            pass
        stages.append((f"{length:g} s: decoded", rss_mb(), peak_rss_mb()))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--seconds", type=float, nargs="+", default=[5, 5, 30, 30])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: comma-separated graphs
    args = parser.parse_args()
    if args.one:
        graphs = tuple(args.one.split(","))
        print(json.dumps(measure(args.bundle, graphs, args.seconds, args.threads)))
        return
    print(f"{args.bundle}, {args.threads} threads, {SPEECH.name} looped, fast mode\n")
    print("| process | stage | RSS MB | peak RSS MB |")
    print("|---|---|---|---|")
    for graphs in [(g,) for g in GRAPHS] + [GRAPHS]:
        command = [
            *(sys.executable, __file__, str(args.bundle), "--one", ",".join(graphs)),
            *("--threads", str(args.threads), "--seconds", *map(str, args.seconds)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        for stage, rss, peak in json.loads(done.stdout):
            print(f"| {' + '.join(graphs)} | {stage} | {rss:.0f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
