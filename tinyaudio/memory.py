"""Handing freed memory back to the operating system: between the stages of a long job, and
after every run of a graph.

Export and quantization load gigabytes, free them, and load the next stage. Python and
onnxruntime free into glibc's heap, which keeps most of it: blocks under glibc's adaptive mmap
threshold (up to 32 MB, so every layer's weight) land in arenas that are rarely given back, and
the process's RSS stays at its high-water mark. ``release`` collects garbage and asks glibc to
return the free pages (``malloc_trim``); elsewhere it only collects. ``pin_malloc_thresholds``
stops the threshold from adapting, so that a graph's freed activations go back at once
(runtime/sessions.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

GLIBC_DEFAULT_THRESHOLD = 128 * 1024
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()
# glibc's own extensions: absent on macOS; musl's mallopt is a stub, and musl has no malloc_trim.
_MALLOC_TRIM = getattr(_LIBC, "malloc_trim", None)
_MALLOPT = getattr(_LIBC, "mallopt", None) if _MALLOC_TRIM is not None else None


def release() -> None:
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def pin_malloc_thresholds() -> None:
    """Keep glibc's mmap and trim thresholds at their defaults instead of letting them grow to
    the largest block freed so far, so large freed blocks are returned to the system."""
    if _MALLOPT is not None:
        _MALLOPT(M_MMAP_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
        _MALLOPT(M_TRIM_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
