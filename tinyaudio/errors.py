"""The one exception type users see: every message is a complete, single-line explanation."""

import logging
import os
import signal
import sys
from collections.abc import Callable


class TinyAudioError(Exception):
    """A user-facing failure: the CLI prints ``error: <message>`` and exits non-zero."""


def run_cli(main: Callable[[], int | None]) -> int:
    """Run a console entry point: user errors become one line on stderr and exit status 2.

    Ctrl-C and SIGTERM remove unfinished outputs and exit at once: raising KeyboardInterrupt
    inside torch's exporter can abort the process before any cleanup runs.
    """
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    warnings = logging.StreamHandler(sys.stderr)  # library warnings as `warning: ...` lines
    warnings.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("tinyaudio")
    logger.addHandler(warnings)
    logger.propagate, propagated = False, logger.propagate  # printed once, here
    try:
        return main() or 0
    except TinyAudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(warnings)
        logger.propagate = propagated
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def missing_extra(exc: ImportError, command: str, extra: str) -> TinyAudioError:
    """The error for a command whose optional dependencies are not installed."""
    install = "pip install torch==2.13.0 && " if extra == "export" else ""
    return TinyAudioError(
        f"{command} needs the [{extra}] extra ({exc.name or exc} is not installed): "
        f"{install}pip install 'tinyaudio[{extra}]'"
    )


def _interrupt(signum, frame) -> None:
    from tinyaudio.bundle import discard_unfinished  # bundle imports this module

    discard_unfinished()
    print("interrupted", file=sys.__stderr__, flush=True)  # stderr may be redirected just now
    os._exit(130)
