"""`tinyaudio-reference`: transcribe files with the PyTorch reference pipeline (needs [export]).

The baseline that exported bundles are checked and benchmarked against; also a quick way to see
that a checkpoint loads and runs before exporting it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tinyaudio.errors import missing_extra, run_cli
from tinyaudio.registry import PROJECTOR_TYPES, load_registry
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.lengths import SAMPLE_RATE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyaudio-reference", description=__doc__)
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (any format/rate)")
    parser.add_argument("--model", help="registry name, hub id or checkpoint directory")
    parser.add_argument(
        "--projector",
        choices=PROJECTOR_TYPES,
        help="projector; without --model, the first checkpoint trained with it (presets take any)",
    )
    parser.add_argument("--encoder-dir", help="local audio encoder repo instead of the hub id")
    parser.add_argument("--llm-dir", help="local LLM repo instead of the hub id")
    parser.add_argument("--unpadded", action="store_true", help="skip upstream's 30 s padding")
    parser.add_argument("--prompt", help="replace the instruction (default: the checkpoint's)")
    parser.add_argument("--max-new-tokens", type=int, help="default: the checkpoint's config")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    return parser


def _run(args: argparse.Namespace) -> None:
    try:
        from tinyaudio.export.loader import load_model
        from tinyaudio.export.reference import ReferenceTranscriber
    except ImportError as exc:
        raise missing_extra(exc, "tinyaudio-reference", "export") from None

    audio = {path: load_audio(path) for path in args.files}  # fail on bad input before loading
    registry = load_registry()
    name = registry.choose(args.model, args.projector)
    if name in registry.presets:
        print(f"note: {name} has random weights: its text is noise, it shows the pipeline runs",
              file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    print(f"loading {name} ...", file=sys.stderr)
    model = load_model(name, args.projector, args.encoder_dir, args.llm_dir)
    print(
        f"loaded in {time.perf_counter() - started:.1f} s: {model.encoder.kind} encoder, "
        f"{model.projector.describe()} projector, LLM {model.language_model.config.model_type}"
        f"{' + merged LoRA' if model.lora_merged else ''}",
        file=sys.stderr,
    )
    transcriber = ReferenceTranscriber(model)
    for path, samples in audio.items():
        started = time.perf_counter()
        result = transcriber.transcribe(
            samples, padded=not args.unpadded, instruction=args.prompt,
            max_new_tokens=args.max_new_tokens,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        duration = len(samples) / SAMPLE_RATE
        if args.json:
            record = {
                "file": path,
                "text": result.text,
                "token_ids": result.token_ids,
                "audio_tokens": result.num_audio_tokens,
                "mel_frames": result.mel_frames,
                "audio_seconds": round(duration, 3),
                "seconds": round(seconds, 3),
            }
            print(json.dumps(record))
        else:
            print(f"{path} ({duration:.1f} s audio, {seconds:.2f} s): {result.text}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
