"""Pick the decoder heads whose attention times words, on speech with known word boundaries.

The export transcribes the shipped clips (tinyaudio/export/alignment/: espeak-ng sentences timed
by its word events, made by tinyaudio/bench/word_clips.py) with the FP32 graphs, times the words
it got right with each head alone, ranks the heads, and keeps the best few whose average times
best. The choice and its error go into the manifest (``alignment``); the decoder graph then keeps
only those heads' layers' query outputs. A model that transcribes too few of the clips' words
gets no alignment, and word timestamps on its bundles say so instead of guessing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from tokenizers import Tokenizer

from tinyaudio.bench.word_clips import Clip, read_set
from tinyaudio.onnx_files import load_model
from tinyaudio.runtime.alignment import (
    AttentionRecorder,
    Word,
    seconds_per_row,
    time_words,
    token_pieces,
)
from tinyaudio.runtime.engine import Engine

CLIPS = Path(__file__).with_name("alignment")
MAX_HEADS = 4
MIN_WORDS = 20  # matched words needed to trust a choice
MAX_NEW_TOKENS = 64
PROBE = 6  # clips to transcribe before giving up on a model that hears nothing


@dataclass
class Decoded:
    clip: Clip
    pieces: list[str]
    attention: np.ndarray  # [all heads, steps, rows]


def clip_rows(audio: Engine) -> list[tuple[Clip, np.ndarray]]:
    """Each shipped clip with its audio rows (run while the encoder and projector are loaded)."""
    out = []
    for clip in read_set(CLIPS):
        features, mel_length = audio.features(clip.audio, padded=False)
        out.append((clip, audio.audio_rows(features, mel_length)))
    return out


def _decode(engine: Engine, tokenizer: Tokenizer, clips, heads, scale) -> list[Decoded]:
    """Each clip transcribed with every head's attention kept. A model that gets nothing right
    in the first PROBE clips stops there (a random-weight preset would otherwise decode all of
    them to the token limit, minutes at real size)."""
    decoded = []
    for count, (clip, rows) in enumerate(clips, start=1):
        recorder = AttentionRecorder(heads, scale)
        tokens = [token for token, _ in engine.decode(rows, MAX_NEW_TOKENS, recorder=recorder)]
        ids = [t for t in tokens if t not in engine.stop_ids]
        decoded.append(Decoded(clip, token_pieces(tokenizer, ids), recorder.attention()))
        if count == PROBE and not any(_right_words(d) for d in decoded):
            break
    return decoded


def _right_words(item: Decoded) -> int:
    said = "".join(item.pieces).lower().split()
    return len(set(said) & {word for word, _, _ in item.clip.words})


def matched_errors(
    words: list[Word], truth: list[tuple[str, float, float]]
) -> list[tuple[float, float]]:
    """Signed (start, end) errors in seconds of the ``words`` that match ``truth`` in order
    (punctuation and case aside): a misheard word has no true time to compare with."""
    said = [w.word.strip(".,!?;:").lower() for w in words]
    matcher = difflib.SequenceMatcher(a=said, b=[w for w, _, _ in truth], autojunk=False)
    errors = []
    for tag, first, last, other, _ in matcher.get_opcodes():
        if tag == "equal":
            for k in range(last - first):
                _, start, end = truth[other + k]
                errors.append((words[first + k].start - start, words[first + k].end - end))
    return errors


def word_errors(decoded: list[Decoded], heads: list[int], row_seconds: float) -> np.ndarray:
    """[words, 2] signed start and end errors (s) of the correctly transcribed words."""
    errors = []
    for item in decoded:
        ones = [1.0] * len(item.pieces)
        words = time_words(item.attention[heads], item.pieces, ones, row_seconds, item.clip.audio)
        errors += matched_errors(words, item.clip.words)
    return np.array(errors).reshape(-1, 2)


def _score(errors: np.ndarray) -> float:
    """Median and 90th percentile of |start| and |end| errors, averaged: lower is better."""
    magnitude = np.abs(errors)
    return float((np.median(magnitude, 0) + np.percentile(magnitude, 90, 0)).sum() / 4)


def summary(errors: np.ndarray) -> dict[str, float | int]:
    magnitude = np.abs(errors) * 1000
    return {
        "words": len(errors),
        "start_median_ms": round(float(np.median(magnitude[:, 0])), 1),
        "start_p90_ms": round(float(np.percentile(magnitude[:, 0], 90)), 1),
        "end_median_ms": round(float(np.median(magnitude[:, 1])), 1),
        "end_p90_ms": round(float(np.percentile(magnitude[:, 1], 90)), 1),
    }


def choose_heads(
    engine: Engine, tokenizer: Tokenizer, clips: list[tuple[Clip, np.ndarray]], scale: float
) -> dict[str, Any] | None:
    """The manifest's ``alignment`` section, or None when too few words come out right."""
    queries = engine.decoder.queries
    all_heads = [(layer, head) for layer in sorted(queries)
                 for head in range(queries[layer].shape[1])]  # fmt: skip
    row_seconds = seconds_per_row(engine.manifest["audio"])
    decoded = _decode(engine, tokenizer, clips, all_heads, scale)
    single = {i: word_errors(decoded, [i], row_seconds) for i in range(len(all_heads))}
    if len(single[0]) < MIN_WORDS:
        return None
    ranked = sorted(single, key=lambda i: _score(single[i]))
    best, best_errors = ranked[:1], single[ranked[0]]
    for count in range(2, MAX_HEADS + 1):
        errors = word_errors(decoded, ranked[:count], row_seconds)
        if _score(errors) < _score(best_errors):
            best, best_errors = ranked[:count], errors
    return {
        "heads": [list(all_heads[i]) for i in sorted(best)],
        "scale": scale,
        "chosen_on": {"clips": len(clips), **summary(best_errors)},
    }


def keep_queries(path: Path, layers: set[int]) -> None:
    """Rewrite the decoder graph (its .onnx only; weights untouched) without the alignment
    query outputs of other layers, and without the nodes that only fed them."""
    model = load_model(path, weights=False)
    graph = model.graph
    kept = [o for o in graph.output if not o.name.startswith("alignment_query.")
            or int(o.name.rsplit(".", 1)[1]) in layers]  # fmt: skip
    del graph.output[:]
    graph.output.extend(kept)
    needed = {o.name for o in kept}
    nodes = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            nodes.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(nodes))
    onnx.save_model(model, str(path))
