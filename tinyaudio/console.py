"""Console entry points: Ctrl-C is handled before the slow imports (numpy, onnxruntime, even
logging) begin, so an early interrupt exits quietly instead of printing a traceback from inside
an import. Only modules the interpreter has already loaded are imported here."""

from __future__ import annotations

import importlib
import os
import signal
import sys


def _quit(signum, frame) -> None:  # nothing is written yet: nothing to clean up
    print("interrupted", file=sys.__stderr__, flush=True)
    os._exit(128 + signum)


def _main(module: str) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _quit)
    return importlib.import_module(module).main()  # its run_cli installs the full handler


def tinyaudio() -> int:
    return _main("tinyaudio.cli")


def tinyaudio_export() -> int:
    return _main("tinyaudio.export.cli")


def tinyaudio_quantize() -> int:
    return _main("tinyaudio.quantize.cli")


def tinyaudio_reference() -> int:
    return _main("tinyaudio.export.reference_cli")
