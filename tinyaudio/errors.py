"""The one exception type users see: every message is a complete, single-line explanation."""


class TinyAudioError(Exception):
    """A user-facing failure: the CLI prints ``error: <message>`` and exits non-zero, no traceback."""
