"""Synthetic training and test speech for the demo model: espeak-ng sentences, closed vocabulary.

Each utterance is a random 3-8 word sentence (no grammar, so every word must come from the audio)
spoken by one of many espeak-ng voices at a random speed and pitch, then gain- and noise-augmented.
Features are computed by the runtime's own numpy front end (unpadded, as `tinyaudio transcribe`
does), so training sees exactly what inference sees. Held-out voices use espeak variants that never
occur in training; test sentences never occur in training.

    python recipe/demo/data.py --work build/demo-recipe          # ~13 min on 2 cores
    python recipe/demo/data.py --samples samples/demo            # the clips make demo plays
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tinyaudio.errors import TinyAudioError, run_cli
from tinyaudio.runtime.features import log_mel
from tinyaudio.runtime.lengths import SAMPLE_RATE

HERE = Path(__file__).resolve().parent
N_MELS = 128  # GLM-ASR's front end
ACCENTS = ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan",
           "en-us-nyc"]  # fmt: skip
TRAIN_VARIANTS = ["", "m1", "m2", "m3", "m5", "m6", "m7", "m8", "f1", "f2", "f4", "f5",
                  "klatt", "klatt3", "adam", "linda", "john", "paul"]  # fmt: skip
HELD_OUT_VARIANTS = ["m4", "f3"]  # never heard in training, in any accent
# Letter names are written as letters in transcripts; espeak is given how they sound.
LETTER_SOUNDS = {
    "a": "eh", "b": "bee", "c": "see", "d": "dee", "e": "ee", "f": "ef", "g": "jee",
    "h": "aitch", "i": "eye", "j": "jay", "k": "kay", "l": "ell", "m": "em", "n": "en",
    "o": "oh", "p": "pee", "q": "cue", "r": "are", "s": "ess", "t": "tee", "u": "you",
    "v": "vee", "w": "double you", "x": "ex", "y": "why", "z": "zee",
}  # fmt: skip
SPLITS = {  # name: (utterances, seed, variants, speed range in words per minute)
    "train": (40000, 1, TRAIN_VARIANTS, (130, 210)),
    "test_seen": (300, 2, TRAIN_VARIANTS, (140, 200)),
    "test_unseen": (300, 3, HELD_OUT_VARIANTS, (140, 200)),
}


def read_words() -> list[str]:
    lines = (HERE / "words.txt").read_text().splitlines()
    return [w.strip() for w in lines if w.strip() and not w.startswith("#")]


@dataclass(frozen=True)
class Job:
    text: str
    voice: str
    speed: int
    pitch: int
    seed: int


def plan(split: str, words: list[str], exclude: set[str]) -> list[Job]:
    """The split's sentences and voices, fully determined by its seed."""
    count, seed, variants, (slow, fast) = SPLITS[split]
    rng = np.random.default_rng(seed)
    jobs: list[Job] = []
    seen = set(exclude)
    while len(jobs) < count:
        text = " ".join(rng.choice(words, size=rng.integers(3, 9)))
        if text in seen:
            continue
        seen.add(text)
        variant = variants[rng.integers(len(variants))]
        voice = ACCENTS[rng.integers(len(ACCENTS))] + (f"+{variant}" if variant else "")
        jobs.append(Job(text, voice, int(rng.integers(slow, fast + 1)),
                        int(rng.integers(25, 76)), int(rng.integers(2**31))))  # fmt: skip
    return jobs


def plans(words: list[str]) -> dict[str, list[Job]]:
    """Every split's utterances; no training sentence is a test sentence."""
    tests = {split: plan(split, words, set()) for split in ("test_seen", "test_unseen")}
    taken = {job.text for jobs in tests.values() for job in jobs}
    return {**tests, "train": plan("train", words, taken)}


def speak(job: Job) -> np.ndarray:
    spoken = " ".join(LETTER_SOUNDS.get(w, w) for w in job.text.split())
    command = ["espeak-ng", "-v", job.voice, "-s", str(job.speed), "-p", str(job.pitch),
               "--stdout", spoken]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, check=True)
    except FileNotFoundError:
        raise TinyAudioError("espeak-ng is not installed (make system, or apt-get install "
                             "espeak-ng)") from None  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise TinyAudioError(f"espeak-ng failed for voice {job.voice}: "
                             f"{exc.stderr.decode().strip()[:200]}") from None  # fmt: skip
    wav, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return soxr.resample(wav, rate, SAMPLE_RATE).astype(np.float32)


def augment(wav: np.ndarray, seed: int) -> np.ndarray:
    """Random gain, white noise at 10-40 dB SNR in 60 % of clips, ≤ 0.3 s of silence each side."""
    rng = np.random.default_rng(seed)
    wav = wav * rng.uniform(0.2, 1.0)
    if rng.random() < 0.6:
        power = float(np.mean(wav**2)) + 1e-9
        snr_db = rng.uniform(10, 40)
        wav = wav + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), wav.shape)
    pad = rng.integers(0, int(0.3 * SAMPLE_RATE), size=2)
    floor = rng.normal(0, 1e-4, pad.sum())
    return np.concatenate([floor[: pad[0]], wav, floor[pad[0] :]]).astype(np.float32)


def featurize(job: Job) -> np.ndarray:
    features, frames = log_mel(augment(speak(job), job.seed), N_MELS, padded=False)
    return features[0, :, :frames].astype(np.float16)


def write_split(split: str, jobs: list[Job], out: Path) -> None:
    """features.npy [n_mels, total frames] float16, offsets.npy, and meta.json (texts, voices)."""
    start = time.time()
    chunks: list[np.ndarray] = []
    with Pool(2) as pool:
        for i, feats in enumerate(pool.imap(featurize, jobs, chunksize=64), 1):
            chunks.append(feats)
            if i % 2000 == 0 or i == len(jobs):
                rate = i / (time.time() - start)
                print(f"  {split}: {i}/{len(jobs)} utterances ({rate:.0f}/s)", file=sys.stderr)
    offsets = np.cumsum([0] + [c.shape[1] for c in chunks]).astype(np.int64)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "features.npy", np.concatenate(chunks, axis=1))
    np.save(out / "offsets.npy", offsets)
    meta = {"texts": [j.text for j in jobs], "voices": [j.voice for j in jobs]}
    (out / "meta.json").write_text(json.dumps(meta))
    hours = offsets[-1] / 100 / 3600
    print(f"{split}: {len(jobs)} utterances, {hours:.1f} h, {time.time() - start:.0f} s",
          file=sys.stderr)  # fmt: skip


def held_out_clips(split: str, count: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Held-out (transcript, 16 kHz audio) pairs, regenerated exactly as the split was made."""
    jobs = plan(split, read_words(), set())[:count]
    return [(job.text, augment(speak(job), job.seed)) for job in jobs]


@dataclass
class Split:
    """A generated split, loaded for training or evaluation."""

    features: np.ndarray
    offsets: np.ndarray
    texts: list[str]
    voices: list[str]

    @classmethod
    def load(cls, directory: Path) -> Split:
        meta = json.loads((directory / "meta.json").read_text())
        return cls(
            np.load(directory / "features.npy", allow_pickle=False),
            np.load(directory / "offsets.npy", allow_pickle=False),
            meta["texts"],
            meta["voices"],
        )

    def __len__(self) -> int:
        return len(self.texts)

    def item(self, i: int) -> np.ndarray:
        return self.features[:, self.offsets[i] : self.offsets[i + 1]]


# The samples shipped in samples/demo: held-out voices, sentences not in the training data.
SAMPLES = [
    ("my sister found the yellow duck", "en-us+f3"),
    ("call me at nine on friday morning", "en-gb+m4"),
    ("my number is k nine z three", "en-gb-scotland+f3"),
]


def sample_path(directory: Path, text: str) -> Path:
    """Samples are named by what they say, so a listener can check the transcript."""
    return directory / f"{text.replace(' ', '-')}.wav"


def write_samples(directory: Path) -> None:
    """One WAV per sample sentence (named by it) and all of them in one file with pauses between,
    for replaying through `tinyaudio live`."""
    directory.mkdir(parents=True, exist_ok=True)
    pause = np.zeros(int(1.2 * SAMPLE_RATE), np.float32)
    parts = [pause]
    for i, (text, voice) in enumerate(SAMPLES):
        wav = 0.7 * speak(Job(text, voice, 160, 50, i))
        sf.write(sample_path(directory, text), wav, SAMPLE_RATE, subtype="PCM_16")
        parts += [wav, pause]
    sf.write(directory.parent / "demo-conversation.wav", np.concatenate(parts), SAMPLE_RATE,
             subtype="PCM_16")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("build/demo-recipe"))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--samples", type=Path, help="only write the shipped sample clips into "
                        "this directory (and demo-conversation.wav beside it)")  # fmt: skip
    args = parser.parse_args()
    if args.samples:
        write_samples(args.samples)
        return
    all_jobs = plans(read_words())
    for split in args.splits:
        target = args.work / "data" / split
        if (target / "meta.json").exists():
            print(f"{split}: already generated in {target}", file=sys.stderr)
            continue
        write_split(split, all_jobs[split], target)


if __name__ == "__main__":
    sys.exit(run_cli(main))
