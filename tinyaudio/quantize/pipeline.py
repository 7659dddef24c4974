"""FP32 bundle → INT8 or INT4 bundle, recipe by recipe until one passes the accuracy gate.

Each precision has a ladder of recipes, cheapest first. A recipe is built, run end to end against
the FP32 bundle on the probe audio, and kept only if every probe's greedy tokens agree; otherwise
the next (more conservative) recipe is tried. Every attempt and its gate figures go into the
manifest. If no recipe passes, quantization stops with an error and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from tinyaudio import onnx_files
from tinyaudio.bundle import (
    read_manifest,
    scratch_directory,
    sha256,
    verify_bundle,
    write_manifest,
    writing_directory,
)
from tinyaudio.errors import TinyAudioError
from tinyaudio.progress import Progress
from tinyaudio.quantize import BLOCK_SIZES, gates, weights
from tinyaudio.quantize.probes import probe_signals
from tinyaudio.runtime.engine import Engine

GATE_TOKENS = 16
# The 4-bit encoder's blocks. MatMulNBits keeps about 0.5 + 12 / block bytes per weight resident
# (packed data, its packed scales and block sums, and the file's scales, still mapped): 0.59 at
# 128, 0.88 at 32, where INT8 keeps 1.0. Measured on the real-size GLM-ASR encoder: 424 MB after
# load at 128, 480 at 64, 671 for INT8 (docs/benchmarks.md#runtime-memory).
ENCODER_BLOCK_SIZE = 128


@dataclass(frozen=True)
class Recipe:
    name: str
    encoder: str  # "fp32" | "int8-dynamic" | "int4-nbits"
    projector: str
    decoder_bits: int
    lm_head_bits: int
    block_size: int
    accuracy_level: int  # MatMulNBits: 4 = int8 activations (VNNI), 1 = fp32 activations
    eight_bit_layers: tuple[str, ...] = ()  # decoder layers kept at 8 bits in a 4-bit recipe

    def graph_recipe(self, graph: str) -> dict:
        if graph == "decoder":
            return {
                "method": "matmul-nbits",
                "bits": self.decoder_bits,
                "lm_head_bits": self.lm_head_bits,
                "block_size": self.block_size,
                "accuracy_level": self.accuracy_level,
                "eight_bit_layers": list(self.eight_bit_layers),
                "symmetric": True,
            }
        method = getattr(self, graph)
        if method == "int4-nbits":  # weight-only, for the smallest resident encoder
            return {
                "method": "matmul-nbits",
                "bits": 4,
                "lm_head_bits": 4,
                "block_size": ENCODER_BLOCK_SIZE,
                "accuracy_level": 4,
                "eight_bit_layers": [],
                "symmetric": True,
            }
        if method == "fp32":
            return {"method": "fp32"}
        return {"method": method, "per_channel": True, "op_types": ["MatMul"]}


def ladder(precision: str, block_size: int) -> list[Recipe]:
    """Recipes for a precision, from fastest to most conservative."""
    if precision == "int8":
        return [
            Recipe("int8", "int8-dynamic", "int8-dynamic", 8, 8, block_size, 4),
            Recipe("int8-fp32-audio", "fp32", "fp32", 8, 8, block_size, 4),
        ]
    if precision == "int4":  # the smallest bundle in memory first: the encoder at 4 bits too
        return [
            Recipe("int4", "int4-nbits", "int8-dynamic", 4, 4, block_size, 4),
            Recipe("int4-int8-encoder", "int8-dynamic", "int8-dynamic", 4, 4, block_size, 4),
            Recipe("int4-lm-head-int8", "int8-dynamic", "int8-dynamic", 4, 8, block_size, 4),
            # llama.cpp's Q4_K_M idea: the layers most sensitive to 4 bits stay at 8.
            Recipe(
                "int4-mixed",
                "int8-dynamic",
                "int8-dynamic",
                4,
                8,
                block_size,
                4,
                ("qkv_proj", "down_proj"),
            ),
        ]
    raise TinyAudioError(f"unknown precision '{precision}': choose int8 or int4")


DEFAULT_BLOCK_SIZE = {"int8": 128, "int4": 32}


def quantize_bundle(
    source: Path,
    output: Path,
    precision: str,
    force: bool = False,
    block_size: int | None = None,
    gate_audio: dict[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Write quantized bundle ``output`` from FP32 bundle ``source``; returns its manifest."""
    progress = progress or Progress(enabled=False)
    if precision not in DEFAULT_BLOCK_SIZE:
        raise TinyAudioError(f"unknown precision '{precision}': choose int8 or int4")
    source = Path(source)
    manifest = read_manifest(source)
    if manifest.get("precision") != "fp32":
        raise TinyAudioError(
            f"{source} is a {manifest.get('precision')} bundle; quantize starts from an FP32 one"
        )
    check_apart(source, Path(output))
    block_size = block_size or DEFAULT_BLOCK_SIZE[precision]
    if block_size not in BLOCK_SIZES:
        sizes = ", ".join(map(str, BLOCK_SIZES))
        raise TinyAudioError(f"--block-size must be one of {sizes}, got {block_size}")
    with (
        writing_directory(output, force) as work,
        scratch_directory(".quantize-", work.parent) as scratch,
    ):
        with progress.stage(f"verify {source}"):
            verify_bundle(source, manifest)
        probes = {**probe_signals(), **(gate_audio or {})}
        with progress.stage(f"FP32 baseline on {len(probes)} probe clips"):
            reference = gates.baseline(source, manifest, probes, GATE_TOKENS)
        attempts = []
        for recipe in ladder(precision, block_size):
            candidate = scratch / recipe.name
            with progress.stage(f"quantize ({recipe.name})"):
                body = _build(source, candidate, recipe, manifest, scratch, progress)
            with progress.stage(f"gate {recipe.name}: greedy tokens vs FP32"):
                result = gates.run_gate(Engine.load(candidate, body), reference)
            attempts.append({"recipe": recipe.name, **result})
            progress.note(f"{recipe.name}: gate {'passed' if result['passed'] else 'FAILED'}")
            if result["passed"]:
                break
        else:
            summary = "; ".join(_failures(a) for a in attempts)
            raise TinyAudioError(f"no {precision} recipe passed the accuracy gate ({summary})")
        for path in candidate.iterdir():
            path.replace(work / path.name)
        body["gates"] = {"tokens_per_probe": GATE_TOKENS, "mode": "fast", "attempts": attempts}
        return write_manifest(work, body)


def check_apart(source: Path, output: Path) -> None:
    """Replacing ``output`` must never touch the source: neither may contain the other."""
    source, output = source.expanduser().resolve(), output.expanduser().resolve()
    if output.is_relative_to(source) or source.is_relative_to(output):
        raise TinyAudioError(
            f"the output {output} and the FP32 source {source} must not contain each other: "
            "choose an output outside the source"
        )


def _build(
    source: Path, target: Path, recipe: Recipe, manifest: dict, scratch: Path, progress: Progress
) -> dict:
    """Quantize each graph into ``target`` as the recipe says and return the manifest body.

    Graphs an earlier recipe already built are reused; files are hard-linked, not copied (the
    encoder alone is 2.5 GB in FP32)."""
    target.mkdir()
    graphs = {}
    for graph in ("encoder", "projector", "decoder"):
        spec = recipe.graph_recipe(graph)
        key = scratch / f"cache-{graph}-{_digest(spec)}"
        name = manifest["graphs"][graph]["file"]
        if not key.exists():
            key.mkdir()
            if spec["method"] == "fp32":
                for path in source.glob(name + "*"):
                    _link(path, key / path.name)
            elif spec["method"] == "int8-dynamic":
                weights.int8_dynamic(source / name, key / name)
            else:
                weights.nbits(source / name, key / name, spec["bits"], spec["block_size"],
                              spec["accuracy_level"], spec["lm_head_bits"],
                              tuple(spec["eight_bit_layers"]))  # fmt: skip
        for path in key.iterdir():
            _link(path, target / path.name)
        progress.note(f"{graph}: {spec['method']} {_size_mb(target / name):.1f} MB")
        graphs[graph] = {
            **manifest["graphs"][graph],
            "precision": _precision(spec),
            "quantization": spec,
            **onnx_files.graph_io(onnx_files.load_model(target / name, weights=False)),
        }
    _link(source / "tokenizer.json", target / "tokenizer.json")
    body = {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")}
    decoder_file = target / graphs["decoder"]["file"]
    body.update(
        precision=recipe.name.split("-")[0],
        recipe=asdict(recipe),
        graphs=graphs,
        embeddings=weights.lm_head_embeddings(decoder_file, manifest["dims"]["llm_hidden"]),
        quantized_from={"precision": "fp32", "manifest_sha256": sha256(source / "manifest.json")},
        tools={
            **manifest["tools"],
            "quantize_onnxruntime": onnxruntime.__version__,
            "quantize_python": platform.python_version(),
        },
    )
    return body


def _link(source: Path, target: Path) -> None:
    """Hard-link (no copy) where the file system allows, else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _failures(attempt: dict) -> str:
    """One attempt's gate failures, short enough for a one-line error."""
    reasons = []
    for name, probe in attempt["probes"].items():
        if probe["decisive_flips"]:
            flip = probe["decisive_flips"][0]
            reasons.append(f"{name} flips token {flip['position']} ({flip['fp32_margin']} σ)")
        elif probe["logits_min_cosine"] < attempt["min_cosine"]:
            reasons.append(f"{name} logits cosine {probe['logits_min_cosine']}")
    return f"{attempt['recipe']}: {', '.join(reasons)}"


def _precision(spec: dict) -> str:
    if spec["method"] == "fp32":
        return "fp32"
    if spec["method"] == "int8-dynamic":
        return "int8"
    extras = [f"lm_head int{spec['lm_head_bits']}"] if spec["lm_head_bits"] != spec["bits"] else []
    if spec["eight_bit_layers"]:
        extras.append("/".join(spec["eight_bit_layers"]) + " int8")
    return f"int{spec['bits']}" + (f" ({', '.join(extras)})" if extras else "")


def _size_mb(path: Path) -> float:
    data = path.with_name(path.name + ".data")
    return (path.stat().st_size + (data.stat().st_size if data.exists() else 0)) / 1e6


def _digest(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
