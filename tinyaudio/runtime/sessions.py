"""onnxruntime sessions for a bundle's graphs: threads, execution provider and memory in one place.

Memory: onnxruntime memory-maps external weights whose offsets are page-aligned (onnx aligns
every tensor over 1 MB) and repacks MatMul weights once at load, so a graph's resident size is
about its file size. The per-window graphs (encoder, projector) run with ``WINDOW_RUN``: the CPU
arena serves the run and gives its chunks back when the run ends. Measured on the real-size INT8
encoder through 10 and 30 s windows: peak RSS 847 MB, 744 MB between runs; plain malloc (no
arena) 954 / 866 MB (glibc keeps freed activations on its heap), the arena alone 918 / 918 MB;
the same speed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnxruntime as ort

from tinyaudio.errors import TinyAudioError

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


def _window_run_options() -> ort.RunOptions:
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


WINDOW_RUN = _window_run_options()  # for graphs run once per window: the arena shrinks after


def create_session(
    path: Path, threads: int | None, providers: list[str], prepack: bool = True
) -> ort.InferenceSession:
    """``providers`` from resolve_provider. ``prepack=False`` leaves MatMul weights in the mapped
    file instead of repacking a copy at load: for an FP32 graph opened once to check it, that
    costs its file size in memory instead of ~1.25x (the copy is made while the file is mapped),
    ~25 % slower (FP32 0.6B decoder: prefill and 10 steps 3.3 s against 2.6 s)."""
    options = ort.SessionOptions()
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
