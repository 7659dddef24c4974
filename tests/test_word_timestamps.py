"""Word timestamps from the decoder's attention: the pieces (monotonic peaks, word grouping,
trimming to sound), the export's head choice in the manifest and the graph, the demo model's
word times against espeak-ng's own word events, subtitle cues cut at a pause, and a bundle
without alignment refused in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from recipe.demo.data import SAMPLES, sample_path
from tests.conftest import REPO, cli_error
from tinyaudio.bench.word_clips import HELD_OUT_VOICES, make_set, vocabulary
from tinyaudio.cli import main
from tinyaudio.onnx_files import load_model
from tinyaudio.runtime.alignment import (
    Word,
    monotonic_peaks,
    split_words,
    trim_to_sound,
    words_of,
)
from tinyaudio.runtime.subtitles import cues, srt
from tinyaudio.runtime.transcribe import Segment, Transcriber


def test_monotonic_peaks_never_step_back():
    attention = np.full((3, 10), 0.01)
    attention[0, 2], attention[1, 6], attention[2, 8] = 0.9, 0.5, 0.9
    attention[1, 1] = 0.45  # nearly as strong, but before token 0's row
    assert monotonic_peaks(attention).tolist() == [2, 6, 8]
    attention[1, 1] = 0.99  # stronger than anything after row 2: the pass still moves forward
    assert monotonic_peaks(attention).tolist()[1] >= 2


def test_words_group_pieces_and_keep_punctuation():
    pieces = ["It", "'s", " nine", " o", "'clock", ",", " Ana", "lyse", "."]
    assert split_words(pieces) == [[0, 1], [2], [3, 4, 5], [6, 7, 8]]


def test_a_word_ends_at_a_pause_not_at_the_next_word():
    loud = np.zeros(200, bool)
    loud[20:50] = loud[55:60] = True  # a word with a 50 ms closure inside
    loud[90:120] = True  # the next word, after a 300 ms pause
    assert trim_to_sound(0.1, 1.5, loud) == (0.2, 0.6)


def test_words_follow_the_cleaned_up_text():
    """The transcript's clean-up drops a think block and collapses trailing repeats: the words
    are those the text kept."""
    spoken = ["<think></think>", "go", "go", "now", "now", "now", "now", "nooo"]
    words = [Word(i, i + 0.5, w, 0.9) for i, w in enumerate(spoken)]
    assert [w.word for w in words_of("go go now", words)] == ["go", "go", "now"]
    assert words_of("go go now", words)[0].start == 1
    assert [w.word for w in words_of("now no", words[3:])] == ["now", "no"]
    assert words_of("something else", words) == []


@pytest.fixture(scope="module")
def transcriber(demo_bundles):
    return Transcriber.from_bundle(demo_bundles["int8"], threads=2)


def test_export_keeps_only_the_chosen_heads_queries(demo_bundles):
    for precision, bundle in demo_bundles.items():
        manifest = json.loads((bundle / "manifest.json").read_text())
        alignment = manifest["alignment"]
        layers = {layer for layer, _ in alignment["heads"]}
        chosen = alignment["chosen_on"]
        assert chosen["words"] >= 20 and chosen["start_median_ms"] <= 80, precision
        outputs = {o.name for o in load_model(bundle / "decoder.onnx", weights=False).graph.output}
        assert {o for o in outputs if o.startswith("alignment_query.")} == {
            f"alignment_query.{layer}" for layer in layers
        }


def test_word_times_match_espeak_word_events(transcriber):
    """Held-out voices and sentences: the words transcribed right start within 80 ms (median)
    of where espeak-ng says, and none is more than 250 ms off."""
    clips = make_set(vocabulary(REPO / "recipe/demo/words.txt"), 8, 11, HELD_OUT_VOICES)
    errors, total = [], 0
    for clip in clips:
        (segment,) = transcriber.transcribe(clip.audio, 16000, word_timestamps=True).segments
        assert segment.text == " ".join(w.word for w in segment.words)
        truth = dict((word, (start, end)) for word, start, end in clip.words)
        total += len(truth)
        errors += [abs(w.start - truth[w.word][0]) for w in segment.words if w.word in truth]
    assert len(errors) >= total / 2
    assert np.median(errors) <= 0.08 and max(errors) <= 0.25


def test_subtitle_cues_are_cut_at_pauses_sentences_and_length():
    """(The demo model cannot hear two sentences in one clip, so the cues are built from words.)"""

    def words(text: str, start: float, step: float = 0.3) -> list[Word]:
        return [Word(start + i * step, start + i * step + 0.25, w, 0.9)
                for i, w in enumerate(text.split())]  # fmt: skip

    spoken = words("call me at nine", 0.0) + words("on friday at noon or later.", 2.0)
    spoken += words("See you then", 3.8)  # after a sentence, no pause
    long = words(" ".join(["elephant"] * 12), 10.0, 0.5)  # 107 characters, 6 s
    segment = Segment(0.0, 30.0, "", [], spoken + long)
    segment.text = " ".join(w.word for w in segment.words)
    found = cues([segment])
    assert [c.text for c in found[:3]] == ["call me at nine", "on friday at noon or later.",
                                          "See you then"]  # fmt: skip
    assert (found[0].start, found[0].end, found[1].start) == (0.0, 1.15, 2.0)
    assert all(len(c.text) <= 84 for c in found) and len(found) == 5
    lines = srt([segment]).split("\n\n")[3].split("\n")[2:]
    assert len(lines) == 2 and all(len(line) <= 42 for line in lines)


def test_a_bundle_without_alignment_is_refused_in_one_line(demo_bundles, tmp_path, capsys):
    bundle = tmp_path / "old"
    shutil.copytree(demo_bundles["int8"], bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["alignment"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    clip = sample_path(REPO / "samples/demo", SAMPLES[0][0])
    assert main(["transcribe", str(bundle), str(clip), "--word-timestamps"]) == 2
    assert "has no word alignment" in cli_error(capsys)
    assert main(["transcribe", str(bundle), str(clip)]) == 0  # plain text still works


def test_a_window_without_speech_has_no_words(transcriber):
    result = transcriber.transcribe(np.zeros(32000, np.float32), 16000, word_timestamps=True)
    assert [(s.text, s.words) for s in result.segments] == [("", [])]
