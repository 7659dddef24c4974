"""What every measuring child shares: the record of one clip, peak memory, the JSON handshake."""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status_mb(field: str) -> float | None:
    """A memory field of Linux's /proc/self/status in MB, or None elsewhere."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far. Linux's VmHWM belongs to this program's
    address space; ``ru_maxrss`` survives exec, so a child would inherit its parent's peak."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float | None:
    """This process's resident memory now (Linux only)."""
    return _status_mb("VmRSS")


def clip_record(
    seconds: float,
    encode_s: float,
    prefill_s: float,
    decode_s: float,
    prompt_tokens: int,
    new_tokens: int,
) -> dict[str, float]:
    """``prefill_s`` ends when the first token is known; ``decode_s`` covers the other
    ``new_tokens - 1`` steps. ``encode_s`` is the audio side: features, encoder, projector."""
    total = encode_s + prefill_s + decode_s
    return {
        "audio_s": seconds,
        "encode_s": encode_s,
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "total_s": total,
        "time_to_first_token_s": encode_s + prefill_s,
        "real_time_factor": total / seconds,
        "encoder_s_per_audio_s": encode_s / seconds,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "prefill_tok_s": prompt_tokens / prefill_s,
        "decode_tok_s": (new_tokens - 1) / decode_s if new_tokens > 1 else 0.0,
        "peak_rss_mb": peak_rss_mb(),
    }


def clip_records(
    seconds: list[float], repeats: int, run: Callable[[float], tuple]
) -> list[dict[str, float]]:
    """Each clip's record from the quickest of ``repeats`` runs (``run(seconds)`` returns
    clip_record's arguments after ``seconds``): the least disturbed by a shared machine, and past
    the first-touch cost of a new length."""
    return [
        clip_record(length, *min((run(length) for _ in range(repeats)), key=lambda t: sum(t[:3])))
        for length in seconds
    ]


def child_main(measure: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """A child gets its job as one JSON argument and answers with one JSON line on stdout."""
    job = json.loads(sys.argv[1])
    result = measure(job)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
