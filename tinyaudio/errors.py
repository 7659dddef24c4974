"""The one exception type users see: every message is a complete, single-line explanation."""

import contextlib
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
    inside torch's exporter can abort the process before any cleanup runs. A reader that goes
    away (``| head``) ends the command quietly; any other OS error is one line too.
    """
    previous = handle_interrupts()
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
    except BrokenPipeError:
        _discard_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:  # permissions, a full disk, an I/O error: say which file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
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


def handle_interrupts() -> dict[int, object]:
    """Install the Ctrl-C / SIGTERM handler; returns the handlers it replaced."""
    return {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}


def _interrupt(signum, frame) -> None:
    bundle = sys.modules.get("tinyaudio.bundle")  # not imported yet: nothing to clean up
    if bundle is not None:
        bundle.discard_unfinished()
    print("interrupted", file=sys.__stderr__, flush=True)  # stderr may be redirected just now
    os._exit(128 + signum)  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):  # not a real file when tests capture it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
