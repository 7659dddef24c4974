"""The benchmark's results as a markdown table (with the targets checked) and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGET_RTF = 0.2
TARGET_SPEEDUP = 10.0
TARGET_RSS_MB = 1200.0
TARGET_DECODE_RATIO = 1.1  # our INT4 decode ÷ onnxruntime-genai's on the same weights
TARGET_DECODE_KEPT = 0.85  # our decode at ~390 positions ÷ at ~140: flat as the context grows
DECODE_CLIPS = (10.0, 30.0)  # ~140 and ~390 prompt positions at real size
BASELINE = "pytorch-fp32"


def focus_clip(result: dict[str, Any], seconds: float = 10.0) -> dict[str, Any] | None:
    """The clip closest to 10 s: the design's headline length."""
    clips = result.get("clips") or []
    return min(clips, key=lambda c: abs(c["audio_s"] - seconds)) if clips else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _row(result: dict[str, Any], baseline: dict[str, Any] | None, seconds: list[float]) -> str:
    name = result["name"]
    if result["status"] != "ok":
        return f"| {name} | {result['status']}: {result['reason']} |" + " |" * 11
    clip = focus_clip(result)
    decoder_only = result.get("decoder_only", False)
    rtfs = {c["audio_s"]: c["real_time_factor"] for c in result["clips"]}
    base = focus_clip(baseline) if baseline else None
    speedup = base["total_s"] / clip["total_s"] if base and not decoder_only else None
    cells = [
        name,
        _fmt(result["load_s"], 1),
        f"{clip['peak_rss_mb']:.0f} / {result['peak_rss_mb']:.0f}",
        _fmt(result.get("size_mb"), 0),
        "—" if decoder_only else _fmt(clip["encoder_s_per_audio_s"], 3),
        _fmt(clip["time_to_first_token_s"]),
        _fmt(clip["prefill_tok_s"], 0),
        _fmt(clip["decode_tok_s"], 1),
        _fmt(result.get("decode_bound_tok_s"), 0),
        *("—" if decoder_only else _fmt(rtfs.get(s)) for s in seconds),
        "—" if speedup is None else f"{speedup:.1f}×",
    ]
    return "| " + " | ".join(cells) + " |"


def _clip(result: dict[str, Any], seconds: float) -> dict[str, Any] | None:
    """The clip of exactly ``seconds`` (None if the run did not measure it)."""
    return next((c for c in result.get("clips") or [] if c["audio_s"] == seconds), None)


def _verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    """Every performance target with its measured figure, MET or MISSED; a target the run could
    not check says why instead of disappearing."""
    ok = {name: r for name, r in results.items() if r["status"] == "ok"}
    lines = []
    ours, genai = ok.get("int4-fast"), ok.get("genai-int4")
    for seconds in DECODE_CLIPS:
        mine, theirs = (_clip(r, seconds) if r else None for r in (ours, genai))
        if mine and theirs:
            ratio = mine["decode_tok_s"] / theirs["decode_tok_s"]
            lines.append(
                f"decode tok/s at {mine['prompt_tokens']} positions ({seconds:g} s clip), ours "
                f"INT4 ÷ onnxruntime-genai INT4: {ratio:.2f} (target ≥ {TARGET_DECODE_RATIO}) "
                f"{_verdict(ratio >= TARGET_DECODE_RATIO)}"
            )
        else:
            lines.append(f"decode vs onnxruntime-genai at {seconds:g} s: not measured in this run")
    short, long = (_clip(ours, s) if ours else None for s in DECODE_CLIPS)
    if short and long:
        kept = long["decode_tok_s"] / short["decode_tok_s"]
        lines.append(
            f"INT4 decode at {long['prompt_tokens']} positions ÷ at {short['prompt_tokens']}: "
            f"{kept:.2f} (target ≥ {TARGET_DECODE_KEPT}) {_verdict(kept >= TARGET_DECODE_KEPT)}"
        )
    else:
        lines.append("INT4 decode at ~390 vs ~140 positions: not measured in this run")
    for name in ("int8-fast", "int4-fast"):
        if name not in ok:
            lines.append(f"{name}: not measured in this run")
            continue
        clip = focus_clip(ok[name])
        rtf = clip["real_time_factor"]
        lines.append(
            f"{name}: RTF {rtf:.3f} on the {clip['audio_s']:g} s clip (target ≤ {TARGET_RTF}) "
            f"{_verdict(rtf <= TARGET_RTF)}"
        )
        if BASELINE in ok:
            speedup = focus_clip(ok[BASELINE])["total_s"] / clip["total_s"]
            lines.append(
                f"{name}: {speedup:.1f}× the PyTorch pipeline end to end (target ≥ "
                f"{TARGET_SPEEDUP:.0f}×) {_verdict(speedup >= TARGET_SPEEDUP)}"
            )
        else:
            lines.append(f"{name} vs the PyTorch pipeline: not measured in this run")
    if ours:
        worst = max(c["peak_rss_mb"] for c in ours["clips"])
        lengths = ", ".join(f"{c['audio_s']:g}" for c in ours["clips"])
        lines.append(
            f"int4-fast: peak RSS {worst:.0f} MB over clips of {lengths} s (target ≤ "
            f"{TARGET_RSS_MB:.0f}) {_verdict(worst <= TARGET_RSS_MB)}"
        )
    else:
        lines.append("int4-fast peak RSS: not measured in this run")
    return lines


def markdown(report: dict[str, Any]) -> str:
    machine, results = report["machine"], report["results"]
    seconds = report["seconds"]
    baseline = results.get(BASELINE)
    baseline = baseline if baseline and baseline["status"] == "ok" else None
    header = [
        "configuration",
        "load s",
        "peak RSS MB (10 s / all)",
        "on disk MB",
        "encoder s per audio s",
        "time to first token s",
        "prefill tok/s",
        "decode tok/s",
        "decode bound tok/s",
        *(f"RTF {s:g} s" for s in seconds),
        "speed-up vs PyTorch",
    ]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [
        f"Model `{report['model']}`; {machine['cpu']}, {machine['logical_cpus']} logical CPUs, "
        f"{machine['memory_gb']} GB; {machine['threads']} threads; memory bandwidth "
        f"{machine['memory_bandwidth_gbs']} GB/s (copy); {report['started']}.",
        f"Versions: {versions}.",
        f"Each clip is real speech, decoded to a fixed {report['tokens_per_second']:g} tokens per "
        f"audio second, fastest of {report['repeats']} runs; columns without a length are for "
        "the clip nearest 10 s. genai runs the "
        "decoder only (same prompt lengths, token ids). Decode bound = bandwidth ÷ decoder "
        "weight bytes.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *(_row(r, baseline, seconds) for r in results.values()),
        "",
        *(f"- {line}" for line in targets(results)),
    ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """RTF per clip length and peak memory per configuration, targets drawn in."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in report["results"].values() if r["status"] == "ok"]
    seconds = report["seconds"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 0.55 * len(ok) + 2.2))
    names = [r["name"] for r in ok]
    y = np.arange(len(ok))
    height = 0.8 / len(seconds)
    for i, s in enumerate(seconds):
        rtf = [
            np.nan
            if r.get("decoder_only")
            else next(c["real_time_factor"] for c in r["clips"] if c["audio_s"] == s)
            for r in ok
        ]
        left.barh(y + (i - (len(seconds) - 1) / 2) * height, rtf, height, label=f"{s:g} s clip")
    left.axvline(TARGET_RTF, color="k", linestyle="--", linewidth=1, label=f"target {TARGET_RTF}")
    left.set_xscale("log")
    left.xaxis.set_major_locator(
        matplotlib.ticker.FixedLocator([0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5])
    )
    left.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for row, result in zip(y, ok, strict=True):
        if result.get("decoder_only"):
            left.text(TARGET_RTF * 1.05, row, "decoder only: no RTF", va="center", fontsize=8)
    left.set_xlabel("real-time factor (lower is faster; log scale)")
    left.set_yticks(y, names)
    left.invert_yaxis()
    left.legend(fontsize=8)
    right.barh(y, [r["peak_rss_mb"] for r in ok], color="tab:gray", label="all clips")
    right.barh(
        y,
        [focus_clip(r)["peak_rss_mb"] for r in ok],
        color="tab:blue",
        label="through the 10 s clip",
    )
    right.axvline(TARGET_RSS_MB, color="k", linestyle="--", linewidth=1, label="target 1.2 GB")
    right.set_xlabel("peak RSS (MB)")
    right.set_yticks(y, [])
    right.invert_yaxis()
    right.legend(fontsize=8)
    machine = report["machine"]
    figure.suptitle(f"{report['model']} on {machine['cpu']}, {machine['threads']} threads")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
