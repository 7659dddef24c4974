"""Word and character error rates (jiwer) on lower-cased, punctuation-free text.

Corpus-level: total edits over total reference words (characters), so long sentences weigh more,
as in every published WER table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """(WER, CER) of the whole corpus, as fractions."""
    import jiwer

    refs = [normalize(t) for t in references]
    hyps = [normalize(t) for t in hypotheses]
    return jiwer.wer(refs, hyps), jiwer.cer(refs, hyps)


def score(
    transcribe: Callable[[np.ndarray], str], clips: Sequence[tuple[str, np.ndarray]]
) -> dict[str, float | list[str]]:
    """Transcribe every (reference, 16 kHz audio) clip → WER and CER in percent, and the texts."""
    hypotheses = [transcribe(audio) for _, audio in clips]
    wer, cer = error_rates([text for text, _ in clips], hypotheses)
    return {"wer": round(100 * wer, 2), "cer": round(100 * cer, 2), "hypotheses": hypotheses}
