"""Transcript post-processing, identical to upstream's ASRPipeline.postprocess.

Shared by the PyTorch reference and the runtime so both emit the same text for the same tokens.
"""

from __future__ import annotations

import re

_THINK_RE = re.compile(r"<think>.*?</think>\s*", flags=re.DOTALL)
_MIN_REPEATS = 3
_TRAILING_CHAR_RE = re.compile(rf"(.)\1{{{_MIN_REPEATS - 1},}}$")
_TRAILING_WORD_RE = re.compile(rf"\b(\w+)(?:\s+\1){{{_MIN_REPEATS - 1},}}\s*$", re.IGNORECASE)


def strip_think(text: str) -> str:
    """Qwen3 may still emit an (empty) think block; upstream removes it."""
    return _THINK_RE.sub("", text).strip() if "<think>" in text else text


def truncate_repetitions(text: str) -> str:
    """Collapse a trailing run of a repeated char, word or 2–20-word phrase (≥3 times) to one."""
    if not text:
        return text
    text = _TRAILING_CHAR_RE.sub(r"\1", text)
    while _TRAILING_WORD_RE.search(text):
        text = _TRAILING_WORD_RE.sub(r"\1", text)

    words = text.split()
    if len(words) < _MIN_REPEATS * 2:
        return text
    window = words[-_MIN_REPEATS * 2 :]
    if len(set(window)) == len(window):
        return text
    for phrase_len in range(2, min(21, len(words) // _MIN_REPEATS + 1)):
        phrase = re.escape(" ".join(words[-phrase_len:]))
        pattern = re.compile(
            rf"(^|.*?\s)({phrase})(?:\s+{phrase}){{{_MIN_REPEATS - 1},}}\s*$", re.IGNORECASE
        )
        match = pattern.match(text)
        if match:
            return (match.group(1) + match.group(2)).strip()
    return text


def finish_transcript(decoded: str) -> str:
    """Text decoded with special tokens skipped → the transcript upstream's pipeline returns."""
    return truncate_repetitions(strip_think(decoded.strip()))
