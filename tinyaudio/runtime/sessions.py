"""onnxruntime sessions for a bundle's graphs: threads, execution provider and memory in one place.

Memory: onnxruntime memory-maps external weights whose offsets are page-aligned (onnx aligns
every tensor over 1 MB) and repacks MatMul weights once at load, so a graph's resident size is
about its file size. Activations come straight from malloc (no onnxruntime arena, no memory
pattern), and glibc's thresholds are pinned so that every freed block over 128 KB goes back to
the system: glibc otherwise raises its mmap threshold to the largest block freed so far, so a
window's activations stay on its heap, and an arena keeps what the longest prefill needed.
Measured on the real-size INT4 bundle (4-bit encoder) through 5, 5, 30 and 30 s clips: the arena
(shrunk after each encoder run) peaked at 1229 MB and held 1229 after the last clip, growing with
every 30 s clip; without it, 1122 and 983, the same for each clip; decode and prefill speed
within noise (22.6 / 23.0 tok/s at 140 positions; docs/benchmarks.md#runtime-memory).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnxruntime as ort

from tinyaudio.errors import TinyAudioError
from tinyaudio.memory import pin_malloc_thresholds

log = logging.getLogger("tinyaudio")

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# What to try under a provider before the CPU (TensorRT hands unsupported nodes to CUDA).
FALLBACKS = {"TensorrtExecutionProvider": ["CUDAExecutionProvider"]}
# Providers whose memory is a GPU's: the decoder keeps its KV cache there (runtime/decoder.py).
CACHE_DEVICES = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}
MAX_THREADS = 256  # more is a typo: onnxruntime would start them all and crawl


def check_threads(threads: int | None) -> None:
    """Refuse thread counts that cannot be meant; warn when they exceed the machine's cores
    (threads then wait for each other and every step gets slower)."""
    if threads is None:
        return
    if not 1 <= threads <= MAX_THREADS:
        raise TinyAudioError(f"--threads must be between 1 and {MAX_THREADS}, got {threads}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if threads > (cores or 1):
        log.warning(
            "--threads %d is more than this machine's %d cores: expect it slower", threads, cores
        )


def resolve_provider(name: str | None) -> list[str]:
    """A provider name (alias or onnxruntime's) → the providers to try, CPU always last.

    An unknown name is an error; a known provider missing from this onnxruntime build falls back
    to the CPU with a warning (one app, many devices: a Jetson build has CUDA, a Pi's does not).
    """
    if name is None:
        return ["CPUExecutionProvider"]
    provider = PROVIDER_ALIASES.get(name.lower(), name)
    if provider not in ort.get_all_providers():
        known = ", ".join(sorted(PROVIDER_ALIASES))
        raise TinyAudioError(f"unknown execution provider '{name}' (names: {known})")
    available = ort.get_available_providers()
    chain = [p for p in [provider, *FALLBACKS.get(provider, [])] if p in available]
    if provider not in available:
        log.warning(
            "%s is not in this onnxruntime build (available: %s); running on %s",
            provider, ", ".join(available), chain[0] if chain else "CPUExecutionProvider",
        )  # fmt: skip
    return [p for p in chain if p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]


def create_session(
    path: Path, threads: int | None, providers: list[str], prepack: bool = True
) -> ort.InferenceSession:
    """``providers`` from resolve_provider. ``prepack=False`` leaves MatMul weights in the mapped
    file instead of repacking a copy at load: for an FP32 graph opened once to check it, that
    costs its file size in memory instead of ~1.25x (the copy is made while the file is mapped),
    ~25 % slower (FP32 0.6B decoder: prefill and 10 steps 3.3 s against 2.6 s)."""
    pin_malloc_thresholds()
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False  # activations freed after each run (module docstring)
    options.enable_mem_pattern = False
    options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except (ort.capi.onnxruntime_pybind11_state.Fail,
            ort.capi.onnxruntime_pybind11_state.InvalidGraph,
            ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
            ort.capi.onnxruntime_pybind11_state.NoSuchFile) as exc:  # fmt: skip
        first = str(exc).strip().splitlines()[0][:300]
        raise TinyAudioError(f"onnxruntime cannot load {path}: {first}") from None
    if session.get_providers()[0] != providers[0]:  # e.g. CUDA present but its libraries are not
        log.warning("%s could not start for %s; running on CPU", providers[0], path.name)
    return session


def cache_device(session: ort.InferenceSession) -> str | None:
    """Where the decoder's KV cache should live for ``session``: its GPU, or None (host numpy)."""
    return CACHE_DEVICES.get(session.get_providers()[0])
