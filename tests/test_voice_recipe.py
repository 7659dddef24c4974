"""recipe/voice never trains on what it is evaluated on: the real recordings' transcripts."""

from __future__ import annotations

from recipe.voice.corpus import eval_ngrams, overlaps, read_corpus


def test_no_training_sentence_shares_four_words_with_an_evaluation_recording():
    """corpus.py drops such sentences when it builds corpus.tsv; the committed corpus, from which
    every training utterance is drawn, must hold none."""
    grams = eval_ngrams()
    rows = read_corpus()
    assert len(rows) > 60000 and len(grams) > 50
    assert not [text for _, text, _ in rows if overlaps(text, grams)]
