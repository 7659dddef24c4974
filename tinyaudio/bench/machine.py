"""The machine a benchmark ran on: CPU, memory, versions, and its measured memory bandwidth
(which bounds single-token decode: every step reads all the decoder's weights once)."""

from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = (
    "tinyaudio",
    "numpy",
    "onnxruntime",
    "onnxruntime-genai",
    "torch",
    "transformers",
    "bitsandbytes",
)


def memory_bandwidth_gbs(threads: int, megabytes: int = 512, repeats: int = 5) -> float:
    """Best copy bandwidth (bytes read + written per second) with ``threads`` threads copying
    their share of a buffer far larger than any cache; numpy releases the GIL while copying."""
    source = np.ones(megabytes << 18, dtype=np.float32)
    target = np.empty_like(source)
    shares = list(
        zip(np.array_split(source, threads), np.array_split(target, threads), strict=True)
    )
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            started = time.perf_counter()
            list(pool.map(lambda pair: np.copyto(pair[1], pair[0]), shares))
            best = min(best, time.perf_counter() - started)
    return 2 * source.nbytes / best / 1e9


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    total_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
    return round(total_kb / 2**20, 1)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine(threads: int) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "threads": threads,
        "memory_bandwidth_gbs": round(memory_bandwidth_gbs(threads), 1),
        "versions": {p: v for p in PACKAGES if (v := _version(p))},
    }
