"""`tinyaudio-export`: a tiny-audio checkpoint → a verified FP32, INT8 or INT4 ONNX bundle.

Needs the [export] extra (torch, transformers, onnx). The FP32 graphs are checked against PyTorch
before anything is written; INT8/INT4 are then made by tinyaudio-quantize's code and gated on
greedy-token agreement with FP32. The bundle appears only when everything has passed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tinyaudio.bundle import PRECISIONS, check_output, scratch_directory, writing_directory
from tinyaudio.errors import TinyAudioError, missing_extra, run_cli
from tinyaudio.progress import Progress
from tinyaudio.quantize.cli import add_precision, add_quantize_options, gate_audio
from tinyaudio.registry import PROJECTOR_TYPES, load_registry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyaudio-export", description=__doc__)
    parser.add_argument("--model", help="registry name, hub id or checkpoint directory "
                        "(default: models.toml's default)")  # fmt: skip
    parser.add_argument("--projector", choices=PROJECTOR_TYPES,
                        help="projector type: picks the registry checkpoint (or preset variant) "
                        "with it, and must match the checkpoint's own")  # fmt: skip
    add_precision(parser, default="int8", fp32=True)
    parser.add_argument("-o", "--output", help="bundle directory (default: ./<model>-<projector>-"
                        "<precision>)")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    parser.add_argument("--encoder-dir", help="local audio encoder repo instead of the hub id")
    parser.add_argument("--llm-dir", help="local LLM repo instead of the hub id")
    add_quantize_options(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    try:
        from tinyaudio.export.exporter import export_fp32
        from tinyaudio.export.loader import load_model
        from tinyaudio.quantize.pipeline import quantize_bundle
    except ImportError as exc:
        raise missing_extra(exc, "tinyaudio-export", "export") from None

    if args.precision not in PRECISIONS:
        raise TinyAudioError(f"unknown precision '{args.precision}': choose fp32, int8 or int4")
    model_name = load_registry().choose(args.model, args.projector)
    projector = args.projector or "default"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model_name).name or model_name)
    output = Path(args.output or f"{name}-{projector}-{args.precision}").expanduser().absolute()
    check_output(output, args.force)  # fail before minutes of work
    extra_audio = gate_audio(args.gate_audio)
    progress = Progress(enabled=not args.quiet)
    with progress.stage(f"read {model_name} (encoder and LLM load at their stages)"):
        model = load_model(model_name, args.projector, args.encoder_dir, args.llm_dir, parts=())
    if args.precision == "fp32":
        with writing_directory(output, args.force) as work:
            export_fp32(model, work, progress)
    else:
        with scratch_directory(f".{output.name}.fp32-", output.parent) as tmp:
            fp32 = tmp / "fp32"
            fp32.mkdir()
            export_fp32(model, fp32, progress)
            quantize_bundle(fp32, output, args.precision, args.force, args.block_size,
                            extra_audio, progress)  # fmt: skip
    print(output)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
