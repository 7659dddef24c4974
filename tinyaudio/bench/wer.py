"""Word and character error rates (jiwer) on lower-cased, punctuation-free text, or on text
normalised as Whisper's English normaliser does (for real recordings, where "Mr." and "mister",
"colour" and "color" must not count as errors).

Corpus-level: total edits over total reference words (characters), so long sentences weigh more,
as in every published WER table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tinyaudio.errors import TinyAudioError

# The demo model's accuracy bounds (issue 7): FP32 WER % per held-out set, and the WER points
# INT8 / INT4 may add over FP32. benchmarks/wer.py reports them; tests/test_demo.py enforces them.
FP32_BOUNDS = {"test_seen": 10.0, "test_unseen": 20.0}
QUANTIZED_BUDGETS = {"int8": 0.5, "int4": 2.0}


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def english_normalizer() -> Callable[[str], str]:
    """openai-whisper's EnglishTextNormalizer (spellings, numbers, contractions), as packaged
    without torch by whisper-normalizer."""
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        raise TinyAudioError("Whisper's normaliser needs: pip install 'tinyaudio[bench]'") from None
    whisper = EnglishTextNormalizer()
    return lambda text: normalize(whisper(text))


def error_rates(
    references: Sequence[str],
    hypotheses: Sequence[str],
    normalizer: Callable[[str], str] = normalize,
) -> tuple[float, float]:
    """(WER, CER) of the whole corpus, as fractions."""
    try:
        import jiwer
    except ImportError:
        raise TinyAudioError("WER needs jiwer: pip install 'tinyaudio[bench]'") from None

    refs = [normalizer(t) for t in references]
    hyps = [normalizer(t) for t in hypotheses]
    return jiwer.wer(refs, hyps), jiwer.cer(refs, hyps)


def score(
    transcribe: Callable[[np.ndarray], str],
    clips: Sequence[tuple[str, np.ndarray]],
    normalizer: Callable[[str], str] = normalize,
) -> dict[str, float | list[str]]:
    """Transcribe every (reference, 16 kHz audio) clip → WER and CER in percent, and the texts."""
    hypotheses = [transcribe(audio) for _, audio in clips]
    wer, cer = error_rates([text for text, _ in clips], hypotheses, normalizer)
    return {"wer": round(100 * wer, 2), "cer": round(100 * cer, 2), "hypotheses": hypotheses}


def transcribers(
    model: str, bundles: dict[str, Path], exact: tuple[str, ...] = ()
) -> dict[str, Callable[[np.ndarray], str]]:
    """audio → text for the PyTorch reference (unpadded) and each bundle, named as given; the
    bundles named in ``exact`` also run with upstream's 30 s padding, as ``<name>-exact``."""
    from tinyaudio.export.loader import load_model  # torch: only for the reference
    from tinyaudio.export.reference import ReferenceTranscriber
    from tinyaudio.runtime.lengths import SAMPLE_RATE
    from tinyaudio.runtime.transcribe import Transcriber

    reference = ReferenceTranscriber(load_model(model))
    out = {"pytorch": lambda audio: reference.transcribe(audio, padded=False).text}
    runs = {name: (path, False) for name, path in bundles.items()}
    runs |= {f"{name}-exact": (bundles[name], True) for name in exact}
    for name, (path, padded) in runs.items():
        bundle = Transcriber.from_bundle(path, exact=padded)
        out[name] = lambda audio, bundle=bundle: bundle.transcribe(audio, SAMPLE_RATE).text
    return out


def read_transcripts(table: Path) -> list[tuple[Path, str]]:
    """(audio file, reference transcript) per line of a ``file<TAB>text`` table; files are
    relative to the table, ``#`` lines are comments."""
    rows = []
    for line in table.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, text = line.split("\t", 1)
            rows.append((table.parent / name, text))
    return rows
