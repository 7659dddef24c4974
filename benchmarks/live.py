"""Live transcription latency: end of speech → final text, and what a partial update costs.

    pip install ".[mic]" && python benchmarks/live.py BUNDLE... [--threads 2]

One 3 s espeak-ng utterance between silences is pushed through the input stream's callback at
real-time pace, exactly as a microphone would. Latency is the wall time from delivering the block
in which speech ends to the final event; it includes the VAD's 0.5 s end-of-speech wait, during
which the final is decoded ahead once the utterance's 0.2 s padding is in ("ahead": whether it
was). The partial cost is the decode time for the growing utterance at 1, 2 and 3 s.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.scenes import RATE, scene
from tinyaudio.live.capture import BLOCK_SECONDS, Capture
from tinyaudio.live.session import LiveTranscriber
from tinyaudio.live.vad import Segmenter
from tinyaudio.runtime.speech import SpeechDetector
from tinyaudio.runtime.transcribe import Transcriber

TEXT = "Please send me the report before the meeting on Friday."


def measure(bundle: str, threads: int, partial_interval: float) -> dict:
    # as `tinyaudio live` runs it: the segmenter's VAD already picked the speech
    transcriber = Transcriber.from_bundle(bundle, threads=threads, speech_gate=False)
    audio, [(start, end)] = scene([TEXT], gap=2.0, noise=0.005)
    size = int(RATE * BLOCK_SECONDS)
    end_block = int(end * RATE) // size
    capture, delivered = Capture(), {}
    capture.sample_rate = RATE

    def play() -> None:
        began = time.perf_counter()
        for index, offset in enumerate(range(0, len(audio), size)):
            time.sleep(max(0.0, began + index * BLOCK_SECONDS - time.perf_counter()))
            block = audio[offset : offset + size, None]
            capture.callback(block, len(block), None, None)
            if index == end_block:
                delivered["speech end"] = time.perf_counter()
        capture.blocks.put(None)

    transcriber.transcribe(audio[: RATE // 2], RATE)  # warm-up
    live = LiveTranscriber(transcriber, Segmenter(SpeechDetector()), partial_interval)
    player = threading.Thread(target=play)
    player.start()
    final_at, partials, final = None, 0, None
    for event in live.run(capture):
        if event.kind == "final":
            final_at, final = time.perf_counter(), event
        else:
            partials += 1
    player.join()
    speech = audio[int(start * RATE) : int(end * RATE)]
    costs = {}
    for seconds in (1, 2, 3):
        began = time.perf_counter()
        result = transcriber.transcribe(speech[: seconds * RATE], RATE)
        costs[seconds] = (time.perf_counter() - began, result.timings["new_tokens"])
    final_tokens = transcriber.transcribe(speech, RATE).timings["new_tokens"]
    return {
        "precision": transcriber.engine.manifest["precision"],
        "utterance": end - start,
        "latency": final_at - delivered["speech end"] if final else float("nan"),
        "final_tokens": final_tokens,
        "partials": partials,
        "ahead": live.finals_decoded_ahead,
        "costs": costs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--partial-interval", type=float, nargs="+", default=[1.0, 0.0])
    args = parser.parse_args()
    print(f"{args.threads} threads; latency includes the VAD's 0.5 s end-of-speech wait\n")
    print("| bundle | partial interval | utterance | end of speech → final | tokens in final "
          "| ahead | partials | partial cost at 1 / 2 / 3 s (tokens) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for bundle in args.bundles:
        for interval in args.partial_interval:
            r = measure(bundle, args.threads, interval)
            costs = " / ".join(f"{s:.2f} s ({n})" for s, n in r["costs"].values())
            print(f"| {r['precision']} | {interval:g} s | {r['utterance']:.1f} s "
                  f"| {r['latency']:.2f} s "
                  f"| {r['final_tokens']} | {'yes' if r['ahead'] else 'no'} | {r['partials']} "
                  f"| {costs} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
