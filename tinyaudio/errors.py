"""The one exception type users see: every message is a complete, single-line explanation."""

import signal
import sys
from collections.abc import Callable


class TinyAudioError(Exception):
    """A user-facing failure: the CLI prints ``error: <message>`` and exits non-zero."""


def run_cli(main: Callable[[], int | None]) -> int:
    """Run a console entry point: user errors become one line on stderr and exit status 2.

    SIGTERM is handled like Ctrl-C so that half-written outputs are cleaned up either way.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return main() or 0
    except TinyAudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def missing_extra(exc: ImportError, command: str, extra: str) -> TinyAudioError:
    """The error for a command whose optional dependencies are not installed."""
    install = "pip install torch==2.13.0 && " if extra == "export" else ""
    return TinyAudioError(
        f"{command} needs the [{extra}] extra ({exc.name or exc} is not installed): "
        f"{install}pip install 'tinyaudio[{extra}]'"
    )


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
