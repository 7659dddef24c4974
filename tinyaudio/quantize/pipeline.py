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
from dataclasses import asdict
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
from tinyaudio.quantize.recipes import Recipe, block_sizes, ladder
from tinyaudio.runtime.engine import Engine

GATE_TOKENS = 16


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
    blocks = block_sizes(precision, block_size)
    source = Path(source)
    manifest = read_manifest(source)
    if manifest.get("precision") != "fp32":
        raise TinyAudioError(
            f"{source} is a {manifest.get('precision')} bundle; quantize starts from an FP32 one"
        )
    check_apart(source, Path(output))
    if block_size is not None and block_size not in BLOCK_SIZES:
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
        for recipe in [recipe for block in blocks for recipe in ladder(precision, block)]:
            name = f"{recipe.name}, block {recipe.block_size}"
            candidate = scratch / f"{recipe.name}-{recipe.block_size}"
            with progress.stage(f"quantize ({name})"):
                body = _build(source, candidate, recipe, manifest, scratch, progress)
            with progress.stage(f"gate {name}: greedy tokens vs FP32"):
                result = gates.run_gate(Engine.load(candidate, body), reference)
            attempts.append({"recipe": recipe.name, "block_size": recipe.block_size, **result})
            progress.note(f"{name}: gate {'passed' if result['passed'] else 'FAILED'}")
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
    return f"{attempt['recipe']}, block {attempt['block_size']}: {', '.join(reasons)}"


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
