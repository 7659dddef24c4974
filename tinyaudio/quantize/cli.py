"""`tinyaudio-quantize`: an FP32 bundle → an INT8 or INT4 bundle, gated on token agreement.

Runs with onnx + onnxruntime only (no torch): `pip install ".[quantize]"`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinyaudio.errors import TinyAudioError, missing_extra, run_cli
from tinyaudio.progress import Progress
from tinyaudio.quantize import BLOCK_SIZES


def add_precision(parser: argparse.ArgumentParser, default: str | None, fp32: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=default is None)
    choices = ("fp32", "int8", "int4") if fp32 else ("int8", "int4")
    for precision in choices:
        group.add_argument(f"--{precision}", dest="precision", action="store_const",
                           const=precision, help=f"{precision.upper()} bundle")  # fmt: skip
    group.add_argument("--precision", dest="precision", help=argparse.SUPPRESS)
    parser.set_defaults(precision=default)


def add_quantize_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--block-size",
        type=_block_size,
        help="the decoder's MatMulNBits block size: 16, 32, 64, 128 or 256 (default: 128, and "
        "for int4 then 32 if no recipe at 128 passes the gate; an INT4 encoder always uses 128)",
    )
    parser.add_argument(
        "--gate-audio", nargs="+", default=[], metavar="FILE",
        help="real recordings to add to the accuracy gate's probe clips",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _block_size(text: str) -> int:
    """Checked when the command line is read, not after minutes of export."""
    sizes = ", ".join(map(str, BLOCK_SIZES))
    if not text.isdigit() or int(text) not in BLOCK_SIZES:
        raise argparse.ArgumentTypeError(f"{text} is not one of {sizes}")
    return int(text)


def gate_audio(paths: list[str]) -> dict[str, np.ndarray]:
    from tinyaudio.runtime.audio import load_audio

    return {Path(p).name: load_audio(p) for p in paths}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyaudio-quantize", description=__doc__)
    parser.add_argument("bundle", help="FP32 bundle directory (from tinyaudio-export --fp32)")
    add_precision(parser, default=None, fp32=False)
    parser.add_argument("-o", "--output", help="output bundle (default: <bundle>-<precision>)")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    add_quantize_options(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    try:
        from tinyaudio.quantize.pipeline import quantize_bundle
    except ImportError as exc:
        raise missing_extra(exc, "tinyaudio-quantize", "quantize") from None

    if args.precision not in ("int8", "int4"):
        raise TinyAudioError(f"unknown precision '{args.precision}': choose --int8 or --int4")
    source = Path(args.bundle).expanduser().absolute()
    output = Path(args.output or f"{source}-{args.precision}").expanduser().absolute()
    quantize_bundle(source, output, args.precision, args.force, args.block_size,
                    gate_audio(args.gate_audio), Progress(enabled=not args.quiet))  # fmt: skip
    print(output)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
