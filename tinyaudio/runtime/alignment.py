"""Word timestamps from the decoder's own attention over the audio rows.

Each generated token's query, at the layers the export chose (manifest ``alignment``), scores every
cached key exactly as GroupQueryAttention does; the share that falls on the `<audio>` rows says
where in the window the token was read, one row per projector stride. As Whisper does with its
cross-attention, the chosen heads are averaged and aligned monotonically to the tokens. A token
attends most where its sound begins (measured on the demo model: start error median 7 ms, against
~120 ms for Whisper's standardise-and-DTW recipe on the same heads), so a word runs from its first
token's row to the next word's, ended at the first pause of 120 ms and trimmed to where the audio
sounds. Nothing here runs unless word timestamps are asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from tinyaudio.runtime.lengths import HOP_LENGTH, SAMPLE_RATE

FRAME = SAMPLE_RATE // 100  # 10 ms energy frames for trimming words to sound
SILENCE_DB = 35.0  # frames this far below the window's loudest are silence
PAUSE_FRAMES = 12  # 120 ms of silence inside a word's span ends it (a stop closure is shorter)


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


def softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


class AttentionRecorder:
    """What one window's decode leaves for timing: each step's query at the alignment layers and
    its position, then (read once, at the end) those layers' cached keys."""

    def __init__(self, heads: list[tuple[int, int]], scale: float) -> None:
        self.heads = heads
        self.layers = sorted({layer for layer, _ in heads})
        self.scale = scale
        self.queries: list[dict[int, np.ndarray]] = []
        self.positions: list[int] = []
        self.keys: Callable[[int], np.ndarray] | None = None
        self.audio = (0, 0)  # first position and count of the audio rows

    def start(self, keys: Callable[[int], np.ndarray], audio_start: int, rows: int) -> None:
        self.keys, self.audio = keys, (audio_start, rows)

    def step(self, queries: dict[int, np.ndarray], position: int) -> None:
        self.queries.append({layer: queries[layer][0].copy() for layer in self.layers})
        self.positions.append(position)

    def attention(self) -> np.ndarray:
        """[heads, steps, audio rows]: each step's attention weights on the audio rows."""
        first, rows = self.audio
        out = np.zeros((len(self.heads), len(self.positions), rows), np.float32)
        if not self.positions:
            return out
        for layer in self.layers:
            keys = self.keys(layer)  # [kv_heads, positions, head_dim]
            for index, (head_layer, head) in enumerate(self.heads):
                if head_layer != layer:
                    continue
                heads_per_kv = self.queries[0][layer].shape[0] // keys.shape[0]
                shared = keys[head // heads_per_kv]
                for step, position in enumerate(self.positions):
                    query = self.queries[step][layer][head]
                    weights = softmax(shared[: position + 1] @ query * self.scale)
                    out[index, step] = weights[first : first + rows]
        return out


def monotonic_peaks(attention: np.ndarray) -> np.ndarray:
    """The row each token attends to most, in order: the rows r₁ ≤ r₂ ≤ … that maximise
    Σ log attention[t, rₜ] (a Viterbi pass; plain argmax can step back on an ambiguous token).

    ``attention`` [tokens, rows], each token's weights summing to 1."""
    scores = np.log(attention + 1e-9)
    best = np.empty_like(scores)  # best total with token t at row r
    best[0] = scores[0]
    for token in range(1, len(scores)):
        best[token] = scores[token] + np.maximum.accumulate(best[token - 1])
    rows = np.empty(len(scores), dtype=np.int64)
    rows[-1] = int(np.argmax(best[-1]))
    for token in range(len(scores) - 2, -1, -1):
        rows[token] = int(np.argmax(best[token, : rows[token + 1] + 1]))
    return rows


def sounding(audio: np.ndarray) -> np.ndarray:
    """Per 10 ms frame of 16 kHz ``audio``: louder than silence (SILENCE_DB under the peak)."""
    frames = max(len(audio) // FRAME, 1)
    energy = (np.resize(audio, frames * FRAME).reshape(frames, FRAME) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-12)
    return level > level.max() - SILENCE_DB


def trim_to_sound(start: float, end: float, loud: np.ndarray) -> tuple[float, float]:
    """Move ``start`` forward past silent frames, and ``end`` back to the first pause of at
    least PAUSE_FRAMES after it (words hold shorter silences, such as a stop's closure; a longer
    one is the gap before a word the transcript may lack). Kept if all is silent."""
    first, last = int(start * 100), min(int(np.ceil(end * 100)), len(loud))
    inside = np.flatnonzero(loud[first:last])
    if not len(inside):
        return start, end
    gaps = np.flatnonzero(np.diff(inside) > PAUSE_FRAMES)
    stop = inside[gaps[0]] if len(gaps) else inside[-1]
    return (first + inside[0]) / 100, (first + stop + 1) / 100


def token_pieces(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    """The text each token adds to the decoded string (a piece of a multi-byte character that is
    not whole yet adds nothing; the token that completes it adds the character)."""
    pieces, shown = [], ""
    for count in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:count])
        whole = text.startswith(shown) and "\ufffd" not in text
        pieces.append(text[len(shown) :] if whole else "")
        shown = text if whole else shown
    return pieces


def split_words(pieces: list[str]) -> list[list[int]]:
    """Token indices grouped into words: a piece with a letter or digit that starts with a space
    starts a word; the rest (word pieces, punctuation) stay with the word before them."""
    words: list[list[int]] = []
    for index, piece in enumerate(pieces):
        starts = not words or (piece[:1].isspace() and any(c.isalnum() for c in piece))
        if starts and piece.strip():
            words.append([index])
        elif words:
            words[-1].append(index)
    return words


def seconds_per_row(audio: dict[str, Any]) -> float:
    """The audio span of one projector row (encoder frames × the projector's stride)."""
    frame = HOP_LENGTH / SAMPLE_RATE
    for _, _, stride in audio["conv_layers"]:
        frame *= stride
    projector = audio["projector"]
    if projector["type"] in ("mlp", "moe"):
        return frame * projector["pool_stride"]
    if projector["type"] == "mosa":
        return frame * 4
    return frame * projector["qformer_window"] / projector["qformer_queries"]


def time_words(
    attention: np.ndarray,
    pieces: list[str],
    probabilities: list[float],
    row_seconds: float,
    audio: np.ndarray,
    onset_offset: float = 0.0,
) -> list[Word]:
    """Words with times (seconds from the window's start) for one window.

    ``attention`` [heads, steps, rows] has a step per piece (a stop token's may follow). A token
    attends most to the row where its sound begins: a word starts at its first token's row
    (+ ``onset_offset``, measured at export) and ends where the next word starts; both ends are
    then trimmed to sound, which also closes the last word."""
    if not pieces or attention.shape[2] == 0:
        return []
    weights = attention[:, : len(pieces)]
    weights = weights / (weights.sum(axis=2, keepdims=True) + 1e-9)
    onsets = monotonic_peaks(weights.mean(axis=0)) * row_seconds + onset_offset
    loud = sounding(audio)
    groups = split_words(pieces)
    duration = len(audio) / SAMPLE_RATE
    words = []
    for number, indices in enumerate(groups):
        start = float(np.clip(onsets[indices[0]], 0.0, duration))
        end = float(onsets[groups[number + 1][0]]) if number + 1 < len(groups) else duration
        start, end = trim_to_sound(start, max(min(end, duration), start), loud)
        text = "".join(pieces[i] for i in indices).strip()
        probability = float(np.mean([probabilities[i] for i in indices]))
        if words and start < words[-1].end:  # 10 ms rounding must not overlap words
            words[-1].end = round(start, 3)
        words.append(Word(round(start, 3), round(end, 3), text, round(probability, 4)))
    return words


def words_of(text: str, words: list[Word]) -> list[Word]:
    """The timed words the final text kept: the clean-up (runtime/text.py) may drop a think
    block before them and collapse repeats after them (a last word's repeated letter too), so
    the run of words that spells the text, its last word as the text has it; none if no run
    does (never words that are not in the text)."""
    final = text.split()
    if not final:
        return []
    head = len(final) - 1
    for first in range(len(words) - head):
        run = words[first : first + len(final)]
        if [w.word for w in run[:head]] == final[:head] and run[-1].word.startswith(final[-1]):
            run[-1].word = final[-1]
            return run
    return []
