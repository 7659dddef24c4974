"""Handing freed memory back to the operating system between the stages of a long job.

Export and quantization load gigabytes, free them, and load the next stage. Python and
onnxruntime free into glibc's heap, which keeps most of it: blocks under glibc's adaptive mmap
threshold (up to 32 MB, so every layer's weight) land in arenas that are rarely given back, and
the process's RSS stays at its high-water mark. ``release`` collects garbage and asks glibc to
return the free pages (``malloc_trim``); elsewhere it only collects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def _trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


_MALLOC_TRIM = _trim()


def release() -> None:
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
