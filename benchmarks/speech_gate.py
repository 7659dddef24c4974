"""What the file transcriber's speech gate costs on speech and saves on silence and noise: every
clip transcribed with the gate on and off, side by side in one run.

    python benchmarks/speech_gate.py build/demo-int8 [--threads 2]

Clips: the demo samples and jfk.wav (speech), 10 minutes of digital silence, 60 s of white noise
and 0.1 s of silence. Reports the best of ``--repeats`` wall times with and without the gate,
their ratio, the Silero check's own share, and what each run printed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.transcribe import Transcriber

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    speech = {path.stem: load_audio(path) for path in sorted((SAMPLES / "demo").glob("*.wav"))}
    return {
        **speech,
        "jfk.wav (real speech, 11 s)": load_audio(SAMPLES / "jfk.wav"),
        "digital silence, 10 min": np.zeros(600 * SAMPLE_RATE, np.float32),
        "white noise -26 dBFS, 60 s": (0.05 * rng.standard_normal(60 * SAMPLE_RATE)).astype(
            np.float32
        ),
        "silence, 0.1 s": np.zeros(SAMPLE_RATE // 10, np.float32),
    }


def best(transcriber: Transcriber, audio: np.ndarray, repeats: int) -> tuple[float, dict, str]:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = transcriber.transcribe(audio, SAMPLE_RATE)
        runs.append((time.perf_counter() - started, result.timings, result.text))
    return min(runs, key=lambda run: run[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gated = Transcriber.from_bundle(args.bundle, args.threads)
    plain = Transcriber.from_bundle(args.bundle, args.threads, speech_gate=False)
    print(f"bundle {args.bundle}, {args.threads} threads, best of {args.repeats}\n")
    print("| clip | gate on s | gate off s | on / off | speech check s | text, gate on | "
          "text, gate off |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, audio in clips().items():
        on, timings, text_on = best(gated, audio, args.repeats)
        off, _, text_off = best(plain, audio, args.repeats)
        check = timings.get("speech_check", 0.0)
        shown = (repr(text_on[:40]), repr(text_off[:40] + ("…" if len(text_off) > 40 else "")))
        print(f"| {name} | {on:.3f} | {off:.3f} | {on / off:.2f} | {check:.3f} | "
              f"{shown[0]} | {shown[1]} |")  # fmt: skip


if __name__ == "__main__":
    main()
