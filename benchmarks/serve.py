"""`tinyaudio serve` under load: latency per request and requests per minute, Wyoming and HTTP.

    python benchmarks/serve.py BUNDLE [BUNDLE ...] [--clip FILE] [--requests 20] [--clients 3]
                               [--threads 2] [-o benchmarks/serve]

For each bundle a server process is started as a user starts it; after two warm-up requests,
``--requests`` go one after another (latency: from the first byte sent to the final transcript)
and then the same number from ``--clients`` clients at once (requests per minute with a queue).
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


def measure(call, requests: int, clients: int) -> dict:
    for _ in range(2):
        call()
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        text = call()
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: call(), range(requests)))
    loaded = time.perf_counter() - started
    latencies.sort()
    return {
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p90_s": round(latencies[int(0.9 * (len(latencies) - 1))], 3),
        "sequential_per_minute": round(60 * len(latencies) / sum(latencies), 1),
        "loaded_per_minute": round(60 * requests / loaded, 1),
        "text": text,
    }


def bench_bundle(bundle: Path, clip: Path, args: argparse.Namespace) -> dict:
    manifest = read_manifest(bundle)
    server = ServerProcess(bundle, "--threads", str(args.threads), "--max-queue", "64")
    try:
        idle = server.rss_mb()
        rows = {}
        for protocol, make in (("wyoming", wyoming_call), ("http", http_call)):
            print(f"{bundle.name}: {protocol} ...", file=sys.stderr, flush=True)
            rows[protocol] = measure(make(server, clip), args.requests, args.clients)
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
        "| bundle | protocol | latency p50 / p90 (s) | req/min, sequential | req/min, "
        f"{args.clients} clients | RSS idle → after (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for protocol in ("wyoming", "http"):
            row = result[protocol]
            lines.append(
                f"| {result['model']} {result['precision']} | {protocol} | "
                f"{row['latency_p50_s']} / {row['latency_p90_s']} | "
                f"{row['sequential_per_minute']} | {row['loaded_per_minute']} | "
                f"{result['rss_idle_mb']} → {result['rss_after_mb']} |"
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
