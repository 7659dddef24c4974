"""`tinyaudio`: the torch-free command line (registry listing now; transcription joins it later)."""

from __future__ import annotations

import argparse
import sys

from tinyaudio.errors import run_cli
from tinyaudio.registry import load_registry


def _models(args: argparse.Namespace) -> None:
    registry = load_registry(args.registry)
    print(f"registry: {registry.path}  (default model: {registry.default_model})")
    print("\ncheckpoints (hub):")
    for entry in registry.checkpoints.values():
        print(f"  {entry.name:<28} {entry.repo:<34} {entry.projector:<8} {entry.llm}")
        print(f"  {'':<28} {entry.description}")
    print("\nrandom-weight presets (built offline):")
    for preset in registry.presets.values():
        enc, llm = preset.encoder, preset.llm
        print(
            f"  {preset.name:<28} encoder {enc.kind} {enc.num_layers}x{enc.hidden_size}, "
            f"{preset.projector} (any projector), {llm.family} {llm.num_layers}x{llm.hidden_size}"
        )
        print(f"  {'':<28} {preset.description}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyaudio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list the models in the registry (models.toml)")
    models.add_argument("--registry", help="another models.toml to read")
    models.set_defaults(func=_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
