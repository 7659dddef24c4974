"""onnxruntime sessions for a bundle's graphs: threads, execution provider and memory in one place.

Memory: onnxruntime memory-maps external weights whose offsets are page-aligned (onnx aligns
every tensor over 1 MB) and repacks MatMul weights once at load, so a graph's resident size is
about its file size. Activations: glibc's thresholds are pinned, so that every freed block over
128 KB goes back to the system (glibc otherwise raises its mmap threshold to the largest block
freed so far, so a window's activations stay on its heap). The projector and decoder allocate
straight from malloc (no arena, no memory pattern). The encoder, whose run allocates and frees
gigabytes of activations, gets onnxruntime's arena, emptied after every run (``ENCODER_RUN``):
without one, each activation is a fresh mmap whose pages fault in, zeroed, on first touch, and the
real-size INT8 encoder spent half its time there (10 s window, 2-core EPYC with VNNI: 2.80 s
without an arena, 1.52 s with it). Measured on the real-size INT4 bundle (4-bit encoder) through
30, 30, 5 and 30 s clips (docs/benchmarks.md#runtime-memory): peak 1153 MB and 1013 held after
every clip with the emptied encoder arena; 1122 and 983 with none; an arena kept between runs
peaked at 1229 MB and grew with every 30 s clip.
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
# Run options for an arena session: hand the arena's memory back when the run ends.
ENCODER_RUN = ort.RunOptions()
ENCODER_RUN.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


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
    path: Path,
    threads: int | None,
    providers: list[str],
    prepack: bool = True,
    arena: bool = False,
) -> ort.InferenceSession:
    """``providers`` from resolve_provider. ``arena``: allocate activations from onnxruntime's
    arena; run it with ``ENCODER_RUN`` so that the arena is emptied after every run.
    ``prepack=False`` leaves MatMul weights in the mapped file instead of repacking a copy at
    load: for an FP32 graph opened once to check it, that costs its file size in memory instead
    of ~1.25x (the copy is made while the file is mapped), ~25 % slower (FP32 0.6B decoder:
    prefill and 10 steps 3.3 s against 2.6 s)."""
    pin_malloc_thresholds()
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena  # module docstring
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
