"""Accuracy gates: a quantized bundle must pick FP32's greedy tokens wherever FP32 is decisive.

Both bundles run end to end (front end → encoder → projector → decoder) on the same probe audio,
so encoder and projector error reach the gate through the tokens, as they do in use. The
quantized decoder is then teacher-forced along FP32's greedy sequence (stop token included) and
must choose the same token at every position, except where FP32 itself is at a near-tie: its top
two logits closer than ``TIE_FRACTION`` of the spread (standard deviation) of its logits there.
There the choice is within FP32's own indecision, and a free-running comparison would stop meaning
anything after the first such flip. Ties are counted and reported, never hidden: random-weight
models are near-ties almost everywhere (their gate is mostly the logit-similarity floor below), a
trained model is decisive at most positions. Independently of ties, the quantized logits must keep
a cosine similarity of at least ``MIN_COSINE`` with FP32's at every position, which catches a
broken quantization even where every position is a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyaudio import memory
from tinyaudio.runtime.engine import AUDIO_GRAPHS, Engine

TIE_FRACTION = 1.0  # a near-tie: top-1 minus top-2 within one standard deviation of the logits
MIN_COSINE = 0.5  # sanity floor: broken packing gives ≈0; working int4 on tiny random nets ≥0.86


@dataclass
class Baseline:
    features: np.ndarray
    mel_length: int
    rows: np.ndarray
    tokens: list[int]
    margins: list[float]  # FP32 top-1 minus top-2 logit, in standard deviations of the logits
    logits: list[np.ndarray]  # FP32 logits at each position


def _margin(logits: np.ndarray) -> float:
    top2 = np.partition(logits[0], -2)[-2:]
    return float(top2[1] - top2[0]) / (float(logits[0].std()) or 1.0)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.ravel() @ b.ravel()) / (float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0)


def baseline(
    source: Path, manifest: dict, probes: dict[str, np.ndarray], max_tokens: int
) -> dict[str, Baseline]:
    """FP32's greedy run on each probe, one stage at a time (the audio graphs, then the decoder):
    the FP32 weights are never all loaded at once."""
    audio = Engine.load(source, manifest, graphs=AUDIO_GRAPHS, prepack=False)
    inputs = {}
    for name, signal in probes.items():
        features, mel_length = audio.features(signal, padded=False)
        inputs[name] = (features, mel_length, audio.audio_rows(features, mel_length))
    del audio
    memory.release()
    decoder = Engine.load(source, manifest, graphs=("decoder",), prepack=False)
    out = {}
    for name, (features, mel_length, rows) in inputs.items():
        tokens, margins, kept = [], [], []
        for token, logits in decoder.decode(rows, max_tokens):
            tokens.append(token)
            margins.append(_margin(logits))
            kept.append(logits.copy())
        out[name] = Baseline(features, mel_length, rows, tokens, margins, kept)
    del decoder
    memory.release()
    return out


def run_gate(engine: Engine, reference: dict[str, Baseline]) -> dict:
    probes = {}
    for name, base in reference.items():
        rows = engine.audio_rows(base.features, base.mel_length)
        prompt = engine.prompt_embeds(rows)
        cache = engine.decoder.new_cache(prompt.shape[1] + len(base.tokens))
        logits = engine.decoder.forward(prompt, cache)
        flips, ties, cosines = [], 0, []
        for position, (token, margin) in enumerate(zip(base.tokens, base.margins, strict=True)):
            cosines.append(_cosine(logits, base.logits[position]))
            if int(np.argmax(logits[0])) != token:
                if margin < TIE_FRACTION:
                    ties += 1
                else:
                    flips.append({"position": position, "fp32_margin": round(margin, 4)})
            if position + 1 < len(base.tokens):
                logits = engine.decoder.forward(engine.embeddings([token])[None], cache)
        scale = float(np.abs(base.rows).max()) or 1.0
        probes[name] = {
            "tokens": len(base.tokens),
            "agree": len(base.tokens) - ties - len(flips),
            "flips_at_fp32_ties": ties,
            "decisive_flips": flips,
            "fp32_min_margin": round(min(base.margins), 4),
            "fp32_positions_decisive": sum(m >= TIE_FRACTION for m in base.margins),
            "logits_min_cosine": round(min(cosines), 5),
            "audio_rows_max_rel_err": round(float(np.abs(rows - base.rows).max()) / scale, 6),
        }
    passed = all(
        not p["decisive_flips"] and p["logits_min_cosine"] >= MIN_COSINE for p in probes.values()
    )
    return {
        "passed": passed,
        "tie_fraction": TIE_FRACTION,
        "min_cosine": MIN_COSINE,
        "probes": probes,
    }
