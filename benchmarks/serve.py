"""`tinyaudio serve` under load: latency per request and requests per minute, Wyoming and HTTP.

    python benchmarks/serve.py BUNDLE [BUNDLE ...] [--clip FILE] [--requests 20] [--clients 3]
                               [--threads 2] [-o benchmarks/serve]

For each bundle a server process is started as a user starts it. After two warm-up requests,
``--requests`` rounds go one request at a time, each round the same clip three ways: transcribed
in this process (the baseline, same threads), over Wyoming and over HTTP (latency: from the first
byte sent to the final transcript). Then each protocol gets ``--requests`` from ``--clients``
clients at once (requests per minute with a queue).
Wyoming requests go through the `wyoming` client (16-bit PCM chunks, as Home Assistant sends
them), HTTP through the `openai` SDK (a multipart upload). Peak RSS of the server is read at the
end. Writes serve.json and serve.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinyaudio.bench.serving import ServerProcess, file_events, wyoming_request
from tinyaudio.bundle import read_manifest
from tinyaudio.errors import run_cli
from tinyaudio.runtime.transcribe import Transcriber

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "jfk.wav"


def wyoming_call(server: ServerProcess, clip: Path):
    events = file_events(clip)

    def call() -> str:
        replies = asyncio.run(wyoming_request(server.ports["wyoming"], events))
        if replies[-1].type != "transcript-stop":
            raise RuntimeError(f"wyoming error: {replies[-1].data}")
        return replies[-2].data["text"]

    return call


def http_call(server: ServerProcess, clip: Path):
    client = server.openai()
    data = clip.read_bytes()

    def call() -> str:
        upload = (clip.name, data)
        return client.audio.transcriptions.create(model="any", file=upload).text

    return call


def local_call(bundle: Path, clip: Path, threads: int):
    """The same transcription without a server: what the protocols add is the difference."""
    transcriber = Transcriber.from_bundle(bundle, threads=threads)
    return lambda: transcriber.transcribe(clip).text


def percentile(values: list[float], fraction: float) -> float:
    return round(sorted(values)[int(fraction * (len(values) - 1))], 3)


def bench_bundle(bundle: Path, clip: Path, args: argparse.Namespace) -> dict:
    """Latency with the three ways interleaved, request by request (a noisy VM drifts; each way
    sees the same drift), then each protocol loaded by several clients."""
    manifest = read_manifest(bundle)
    server = ServerProcess(bundle, "--threads", str(args.threads), "--max-queue", "64")
    try:
        idle = server.rss_mb()
        calls = {
            "in-process": local_call(bundle, clip, args.threads),
            "wyoming": wyoming_call(server, clip),
            "http": http_call(server, clip),
        }
        latencies: dict[str, list[float]] = {name: [] for name in calls}
        texts = {name: [call() for _ in range(2)][-1] for name, call in calls.items()}  # warm-up
        print(f"{bundle.name}: {args.requests} rounds ...", file=sys.stderr, flush=True)
        for _ in range(args.requests):
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                latencies[name].append(time.perf_counter() - started)
        rows = {}
        for name, times in latencies.items():
            rows[name] = {"latency_p50_s": round(statistics.median(times), 3),
                          "latency_p90_s": percentile(times, 0.9),
                          "sequential_per_minute": round(60 * len(times) / sum(times), 1),
                          "text": texts[name]}  # fmt: skip
        for name in ("wyoming", "http"):
            print(f"{bundle.name}: {name}, {args.clients} clients ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(lambda _, call=calls[name]: call(), range(args.requests)))
            rows[name]["loaded_per_minute"] = round(
                60 * args.requests / (time.perf_counter() - started), 1
            )
        busy = server.rss_mb()
    finally:
        status = server.stop()
    return {"bundle": str(bundle), "model": manifest["model"]["source"],
            "precision": manifest["precision"], "rss_idle_mb": round(idle),
            "rss_after_mb": round(busy), "exit_status": status, **rows}  # fmt: skip


def report(results: list[dict], args: argparse.Namespace, seconds: float) -> str:
    lines = [
        "# tinyaudio serve under load",
        "",
        f"Clip: `{args.clip.name}` ({seconds:.1f} s). {args.requests} requests one after "
        f"another, then {args.requests} from {args.clients} clients at once; "
        f"{args.threads} onnxruntime threads.",
        "",
        "| bundle | protocol | latency p50 / p90 (s) | × in-process | req/min, sequential | "
        f"req/min, {args.clients} clients | server RSS idle → after (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        local = result["in-process"]["latency_p50_s"]
        for protocol in ("in-process", "wyoming", "http"):
            row = result[protocol]
            name = f"{result['model']} {result['precision']}" if protocol == "in-process" else ""
            rss = f"{result['rss_idle_mb']} → {result['rss_after_mb']}" if not name else ""
            lines.append(
                f"| {name} | {protocol} | {row['latency_p50_s']} / {row['latency_p90_s']} | "
                f"{row['latency_p50_s'] / local:.2f} | {row['sequential_per_minute']} | "
                f"{row.get('loaded_per_minute', '')} | {rss} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "serve")
    args = parser.parse_args()

    def run() -> None:
        import soundfile as sf

        seconds = sf.info(str(args.clip)).duration
        results = [bench_bundle(bundle, args.clip, args) for bundle in args.bundles]
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
        text = report(results, args, seconds)
        (args.output / "serve.md").write_text(text)
        print(text)

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
