"""The benchmark's graphs, built once per model and cached: our FP32 bundle (exported), INT8 and
INT4 (quantized from it, as a user would) and onnxruntime-genai's INT4 build of the same LLM."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tinyaudio.bundle import FORMAT_VERSION, scratch_directory
from tinyaudio.errors import TinyAudioError
from tinyaudio.progress import Progress
from tinyaudio.quantize.recipes import block_sizes, ladder
from tinyaudio.registry import cache_root

PRECISIONS = ("fp32", "int8", "int4")
GENAI = "genai-int4"
# genai's builder, set like our INT4 decoder: MatMulNBits, blocks of 32, int8 compute (level 4).
GENAI_OPTIONS = ["int4_block_size=32", "int4_accuracy_level=4"]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def bench_directory(model: str) -> Path:
    return cache_root() / "bench" / model.replace("/", "--")


def _run(command: list[str], what: str, quiet: bool) -> None:
    """Run a build step; its own progress shows unless ``quiet``, its failure is one line."""
    done = subprocess.run(command, capture_output=quiet, text=True)
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        detail = f": {lines[-1]}" if lines else " (see its output above)"
        raise TinyAudioError(f"building the benchmark's {what} failed{detail}")


def build_bundles(
    model: str,
    progress: Progress,
    rebuild: bool = False,
    genai: bool = True,
    gate_audio: Sequence[Path] = (),
) -> dict[str, Path]:
    """Every graph directory this machine can build, by name (fp32, int8, int4[, genai-int4]);
    ``gate_audio`` adds recordings to the quantization gates' probes."""
    directory = bench_directory(model)
    if rebuild and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for precision in PRECISIONS:
        if _stale(directory / precision):
            shutil.rmtree(directory / precision)
    built: dict[str, Path] = {}
    fp32 = directory / "fp32"
    if not (fp32 / "manifest.json").is_file():
        if not installed("torch"):
            raise TinyAudioError(
                "the benchmark bundles are not built yet and exporting needs the [export] extra: "
                "pip install torch==2.13.0 && pip install 'tinyaudio[export]'"
            )
        with progress.stage(f"exporting {model} to FP32 (once; cached in {directory})"):
            _run(
                [
                    sys.executable,
                    "-m",
                    "tinyaudio.export",
                    "--model",
                    model,
                    "--fp32",
                    "-o",
                    str(fp32),
                ],
                "FP32 bundle",
                quiet=False,
            )
    built["fp32"] = fp32
    for precision in PRECISIONS[1:]:
        target = directory / precision
        if not (target / "manifest.json").is_file():
            with progress.stage(f"quantizing to {precision.upper()} (once)"):
                _run(
                    [
                        sys.executable,
                        "-m",
                        "tinyaudio.quantize",
                        str(fp32),
                        f"--{precision}",
                        "-o",
                        str(target),
                        *(["--gate-audio", *map(str, gate_audio)] if gate_audio else []),
                    ],
                    f"{precision} bundle",
                    quiet=False,
                )
        built[precision] = target
    if genai:
        built |= _build_genai(directory, fp32, progress)
    return built


def _stale(bundle: Path) -> bool:
    """A cached bundle in another format, quantized by a recipe that has changed since (another
    tinyaudio version built it), or whose ladder did not start at today's default block: rebuilt,
    not refused."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("format_version") != FORMAT_VERSION:
        return True
    recorded = manifest.get("recipe")
    if recorded is None:  # FP32: exported, not quantized
        return False
    recipes = {r.name: r for r in ladder(manifest["precision"], recorded["block_size"])}
    recipe = recipes.get(recorded["name"])
    if recipe is None or _as_json(asdict(recipe)) != recorded:
        return True
    attempts = manifest.get("gates", {}).get("attempts") or [{}]
    if attempts[0].get("block_size") != block_sizes(manifest["precision"], None)[0]:
        return True
    graphs = manifest.get("graphs", {})
    return any(
        _as_json(recipe.graph_recipe(graph)) != graphs.get(graph, {}).get("quantization")
        for graph in ("encoder", "projector", "decoder")
    )


def _as_json(value: dict) -> dict:
    """``value`` as the manifest stores it (tuples become lists)."""
    return json.loads(json.dumps(value))


def _build_genai(directory: Path, fp32: Path, progress: Progress) -> dict[str, Path]:
    genai = directory / GENAI
    if not (genai / "genai_config.json").is_file() and installed("onnxruntime_genai"):
        manifest = json.loads((fp32 / "manifest.json").read_text())
        llm = manifest["model"]["text_model_id"]
        with (
            progress.stage(f"building onnxruntime-genai's INT4 graph of {Path(llm).name} (once)"),
            scratch_directory(f".{GENAI}-", directory) as work,
        ):
            _run(
                [
                    sys.executable,
                    "-m",
                    "onnxruntime_genai.models.builder",
                    "-i",
                    llm,
                    "-o",
                    str(work / "model"),
                    "-p",
                    "int4",
                    "-e",
                    "cpu",
                    "-c",
                    str(work / "cache"),
                    "--extra_options",
                    *GENAI_OPTIONS,
                ],
                "onnxruntime-genai model",
                quiet=True,
            )
            (work / "model").replace(genai)
    return {GENAI: genai} if (genai / "genai_config.json").is_file() else {}
