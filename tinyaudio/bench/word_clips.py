"""Speech with known word boundaries: espeak-ng sentences, timed by its own word events.

libespeak-ng (ctypes, synchronous mode) reports the sample at which each word starts; a word
runs to the next one's start (the end event for the last), trimmed to its sound. A random
inter-word gap per clip (espeak's ``WORDGAP``, 0-250 ms) gives pauses to time word ends against.

Two uses: the clips the export picks alignment heads on (shipped in tinyaudio/export/alignment/),
and the held-out set `benchmarks/word_timestamps.py` measures timestamp error on (other voices,
other words, another seed). espeak-ng is a build and benchmark tool here, never a runtime one.

    python -m tinyaudio.bench.word_clips --words recipe/demo/words.txt --count 24 --seed 1 \
        --out tinyaudio/export/alignment
"""

from __future__ import annotations

import argparse
import ctypes
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tinyaudio.errors import TinyAudioError, run_cli
from tinyaudio.runtime.lengths import SAMPLE_RATE

FRAME = SAMPLE_RATE // 200  # 5 ms
TRIM_DB = 40.0  # a word's sound: frames within this of the clip's loudest
SEEN_VOICES = ["en-us", "en", "en-gb-x-rp", "en-us+m2", "en+f2", "en-us+m7", "en-029+f1"]
HELD_OUT_VOICES = ["en-us+m4", "en+f3", "en-gb-scotland+m4", "en-us-nyc+f3"]
SYNCHRONOUS, RATE, PITCH, WORDGAP, POS_CHARACTER = 2, 1, 3, 7, 1  # speak_lib.h
WORD_EVENT, END_EVENT = 1, 5


class _Event(ctypes.Structure):  # speak_lib.h's espeak_EVENT
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]  # fmt: skip


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class Clip:
    name: str
    audio: np.ndarray
    words: list[tuple[str, float, float]]  # word, start, end in seconds

    @property
    def text(self) -> str:
        return " ".join(word for word, _, _ in self.words)


class Espeak:
    """libespeak-ng in synchronous mode: samples and word-start events of one sentence."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError:
            raise TinyAudioError("libespeak-ng is not installed (apt-get install espeak-ng)") \
                from None  # fmt: skip
        self.rate = self.lib.espeak_Initialize(SYNCHRONOUS, 0, None, 0)
        self.samples: list[np.ndarray] = []
        self.starts: list[int] = []
        self._callback = _Callback(self._receive)  # kept: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _receive(self, wav, count: int, events) -> int:
        if count > 0:
            self.samples.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != 0:
            event = events[index]  # (some voices add an empty word before the end)
            if event.type == END_EVENT or (event.type == WORD_EVENT and event.length > 0):
                self.starts.append(event.sample)
            index += 1
        return 0

    def say(self, words: list[str], voice: str, speed: int, pitch: int, gap: int):
        """(16 kHz audio, the sample each word starts at, then the end's)."""
        self.samples, self.starts = [], []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise TinyAudioError(f"espeak-ng has no voice {voice}")
        for parameter, value in ((RATE, speed), (PITCH, pitch), (WORDGAP, gap)):
            self.lib.espeak_SetParameter(parameter, value, 0)
        text = " ".join(words).encode()
        self.lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        if len(self.starts) != len(words) + 1:
            raise TinyAudioError(f"espeak-ng reported {len(self.starts) - 1} words for {text!r}")
        audio = np.concatenate(self.samples).astype(np.float32) / 32768
        scale = SAMPLE_RATE / self.rate
        return soxr.resample(audio, self.rate, SAMPLE_RATE), [round(s * scale) for s in self.starts]


@cache
def espeak() -> Espeak:
    return Espeak()


def trimmed(start: int, end: int, loud: np.ndarray) -> tuple[float, float]:
    """Samples [start, end) narrowed to the loud 5 ms frames inside, in seconds."""
    first, last = start // FRAME, max(end // FRAME, start // FRAME + 1)
    inside = np.flatnonzero(loud[first:last])
    if len(inside):
        first, last = first + inside[0], first + inside[-1] + 1
    return first * FRAME / SAMPLE_RATE, last * FRAME / SAMPLE_RATE


def make_clip(name: str, words: list[str], voice: str, rng: np.random.Generator) -> Clip:
    """``words`` as one espeak-ng sentence in ``voice``, 0.1-0.4 s of silence each side, light
    white noise (30-45 dB SNR) so silence is not digital zero."""
    speed, pitch = int(rng.integers(140, 200)), int(rng.integers(30, 70))
    gap = int(rng.integers(26))  # espeak's unit: 10 ms
    speech, starts = espeak().say(words, voice, speed, pitch, gap)
    frames = len(speech) // FRAME
    energy = (speech[: frames * FRAME].reshape(frames, FRAME) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-12)
    loud = level > level.max() - TRIM_DB
    lead = int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)
    timed = []
    shift = lead / SAMPLE_RATE
    for word, start, end in zip(words, starts, starts[1:], strict=False):
        begin, finish = trimmed(start, end, loud)
        timed.append((word, round(begin + shift, 4), round(finish + shift, 4)))
    tail = np.zeros(int(rng.uniform(0.1, 0.4) * SAMPLE_RATE), np.float32)
    audio = np.concatenate([np.zeros(lead, np.float32), speech, tail])
    audio *= 0.5 / np.abs(audio).max()
    speech_rms = np.sqrt(np.mean(audio[lead : lead + len(speech)] ** 2))
    noise = rng.standard_normal(len(audio)) * speech_rms * 10 ** (-rng.uniform(30, 45) / 20)
    return Clip(name, (audio + noise).astype(np.float32), timed)


def make_set(vocabulary: list[str], count: int, seed: int, voices: list[str]) -> list[Clip]:
    rng = np.random.default_rng(seed)
    clips = []
    for index in range(count):
        words = list(rng.choice(vocabulary, size=int(rng.integers(3, 9)), replace=False))
        clips.append(make_clip(f"clip-{index:03d}", words, voices[index % len(voices)], rng))
    return clips


def write_set(clips: list[Clip], directory: Path) -> None:
    """``<name>.flac`` per clip and ``words.json`` with each clip's words and times."""
    directory.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        sf.write(directory / f"{clip.name}.flac", clip.audio, SAMPLE_RATE, subtype="PCM_16")
    index = {clip.name: [list(word) for word in clip.words] for clip in clips}
    (directory / "words.json").write_text(json.dumps(index, indent=1) + "\n")


def read_set(directory: Path) -> list[Clip]:
    index = json.loads((directory / "words.json").read_text())
    clips = []
    for name, words in index.items():
        audio, _ = sf.read(directory / f"{name}.flac", dtype="float32")
        clips.append(Clip(name, audio, [(w, float(s), float(e)) for w, s, e in words]))
    return clips


def vocabulary(path: Path) -> list[str]:
    """Words of ``path`` (one per line), letters only and longer than one letter."""
    words = path.read_text().split()
    return sorted({w for w in words if w.isalpha() and len(w) > 1})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="word_clips", description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=Path, required=True, help="vocabulary, one word a line")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--held-out", action="store_true", help="voices the shipped set lacks")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    def run() -> None:
        voices = HELD_OUT_VOICES if args.held_out else SEEN_VOICES
        write_set(make_set(vocabulary(args.words), args.count, args.seed, voices), args.out)

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
