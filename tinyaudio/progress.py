"""Stage-by-stage progress on stderr for the long jobs (export, quantize, benchmarks)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


class Progress:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()

    def note(self, text: str) -> None:
        if self.enabled:
            print(f"  {text}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def stage(self, text: str) -> Iterator[None]:
        if self.enabled:
            print(f"▸ {text} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        yield
        if self.enabled:
            took, total = time.perf_counter() - begun, time.perf_counter() - self.started
            print(f"  done in {took:.1f} s (total {total:.1f} s)", file=sys.stderr, flush=True)
