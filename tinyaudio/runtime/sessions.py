"""onnxruntime sessions for a bundle's graphs: thread count and execution provider in one place."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from tinyaudio.errors import TinyAudioError

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


def resolve_provider(name: str | None) -> list[str]:
    """A provider name (alias or onnxruntime's) → the provider list, CPU always last."""
    if name is None:
        return ["CPUExecutionProvider"]
    provider = PROVIDER_ALIASES.get(name.lower(), name)
    available = ort.get_available_providers()
    if provider not in available:
        known = ", ".join(sorted(PROVIDER_ALIASES))
        raise TinyAudioError(
            f"execution provider '{name}' is not available in this onnxruntime build "
            f"(available: {', '.join(available)}; names: {known})"
        )
    return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]


def create_session(
    path: Path, threads: int | None = None, provider: str | None = None
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=resolve_provider(provider))
    except (ort.capi.onnxruntime_pybind11_state.Fail,
            ort.capi.onnxruntime_pybind11_state.InvalidGraph,
            ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
            ort.capi.onnxruntime_pybind11_state.NoSuchFile) as exc:  # fmt: skip
        first = str(exc).strip().splitlines()[0][:300]
        raise TinyAudioError(f"onnxruntime cannot load {path}: {first}") from None
