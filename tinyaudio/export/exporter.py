"""A loaded tiny-audio model → an FP32 bundle: graphs, tokenizer.json, manifest, parity figures."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from tinyaudio import memory
from tinyaudio.bundle import write_manifest
from tinyaudio.errors import TinyAudioError
from tinyaudio.export import alignment_heads, decoder_graph, encoder_graph, graphs
from tinyaudio.export.loader import TinyAudioModel
from tinyaudio.export.parity import Parity
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.onnx_files import graph_io, load_model
from tinyaudio.progress import Progress
from tinyaudio.quantize.weights import lm_head_embeddings
from tinyaudio.runtime.engine import AUDIO_GRAPHS, GRAPHS, Engine
from tinyaudio.runtime.lengths import HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES

TOOLS = ("tinyaudio", "torch", "transformers", "onnx", "onnxscript", "onnxruntime", "tokenizers")


def export_fp32(model: TinyAudioModel, directory: Path, progress: Progress) -> dict[str, Any]:
    """Write the FP32 bundle into ``directory`` (an empty work dir) and return its manifest.

    Stage by stage, each checked before the next: a large module is loaded, its graph written
    and its PyTorch outputs taken, then it is freed before its graph's session is opened, so
    the export peaks at about its largest part (the LLM), not at the whole model twice."""
    decoder_graph.check_supported(model.llm_config)  # before minutes of work
    files = {name: f"{name}.onnx" for name in GRAPHS}
    parity = Parity(model)
    stage = progress.stage(f"export encoder ({model.encoder_info.kind})")
    with stage, model.holding("encoder"):
        encoder_graph.export_encoder(model.encoder, directory / files["encoder"])
        states = parity.encoder_states(model.encoder)
    with progress.stage(f"export projector ({model.projector.describe()})"):
        graphs.export_projector(
            model.projector, model.encoder_info.hidden_size, directory / files["projector"]
        )
        rows = parity.audio_rows(states["fast"])
    stage = progress.stage("export decoder (GroupQueryAttention, shared KV cache, last logits)")
    with stage, model.holding("language_model"):
        positions = decoder_graph.export_decoder(model.language_model, directory / files["decoder"])
        decoder_reference = parity.decoder_reference(rows)
    model.tokenizer.backend_tokenizer.save(str(directory / "tokenizer.json"))
    dims = _dims(model, positions)
    manifest = {
        "precision": "fp32",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": _identity(model),
        "dims": dims,
        "audio": _front_end(model, dims["n_mels"]),
        "prompt": _prompt(model),
        "graphs": {
            name: {
                "file": file,
                "precision": "fp32",
                "quantization": {"method": "fp32"},
                **graph_io(load_model(directory / file, weights=False)),
            }
            for name, file in files.items()
        },
        "embeddings": lm_head_embeddings(directory / files["decoder"], dims["llm_hidden"]),
        "tools": _tool_versions(),
    }
    with progress.stage("parity: ONNX FP32 vs PyTorch (encoder both modes, projector)"):
        audio = Engine.load(directory, manifest, graphs=AUDIO_GRAPHS, prepack=False)
        parity.check_encoder(states, audio)
        parity.check_projector(states["fast"], audio)
        alignment_clips = alignment_heads.clip_rows(audio)
        del audio
        memory.release()
    with progress.stage("parity: ONNX FP32 vs PyTorch (decoder)"):
        decoder_engine = Engine.load(directory, manifest, graphs=("decoder",), prepack=False)
        parity.check_decoder(decoder_reference, rows, decoder_engine)
    with progress.stage("alignment heads: word times on the shipped word-timed clips"):
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        scale = decoder_graph.head_dim(model.llm_config) ** -0.5
        alignment = alignment_heads.choose_heads(decoder_engine, tokenizer, alignment_clips, scale)
        del decoder_engine
        memory.release()
        layers = {layer for layer, _ in alignment["heads"]} if alignment else set()
        alignment_heads.keep_queries(directory / files["decoder"], layers)
        manifest["graphs"]["decoder"].update(
            graph_io(load_model(directory / files["decoder"], weights=False))
        )
        manifest["alignment"] = alignment
        progress.note(_alignment_note(alignment))
    manifest["parity"] = parity.finish()
    decoder = manifest["parity"]["decoder"]
    progress.note(
        f"decoder logits max abs {decoder['logits_max_abs']:.2e} over {decoder['steps']} steps, "
        f"tokens identical: {decoder['tokens_identical']}"
    )
    return write_manifest(directory, manifest)


def _alignment_note(alignment: dict[str, Any] | None) -> str:
    if alignment is None:
        return (f"fewer than {alignment_heads.MIN_WORDS} words transcribed right: no word "
                "timestamps for this model")  # fmt: skip
    chosen = alignment["chosen_on"]
    return (
        f"heads {alignment['heads']}: start error median {chosen['start_median_ms']} ms "
        f"(p90 {chosen['start_p90_ms']}), end {chosen['end_median_ms']} ms "
        f"(p90 {chosen['end_p90_ms']}) over {chosen['words']} words"
    )


def _dims(model: TinyAudioModel, positions: int) -> dict[str, int]:
    config = model.llm_config
    return {
        "n_mels": model.feature_extractor.feature_size,
        "encoder_hidden": model.encoder_info.hidden_size,
        "llm_hidden": config.hidden_size,
        "vocab_size": len(model.tokenizer),  # the LLM's rows after the resize to the tokenizer
        "num_layers": config.num_hidden_layers,
        "num_kv_heads": config.num_key_value_heads,
        "head_dim": decoder_graph.head_dim(config),
        "max_positions": positions,
    }


def _identity(model: TinyAudioModel) -> dict[str, Any]:
    config = model.config
    return {
        "source": model.source,
        "checkpoint": str(model.directory),
        "projector_type": model.projector_type,
        "projector": model.projector.describe(),
        "encoder": model.encoder_info.kind,
        "audio_model_id": config["audio_model_id"],
        "text_model_id": config["text_model_id"],
        "llm_family": model.llm_config.model_type,
        "lora_merged": model.lora_merged,
    }


def _front_end(model: TinyAudioModel, n_mels: int) -> dict[str, Any]:
    projector = model.projector
    return {
        "feature_extractor": "whisper-log-mel",
        "sample_rate": SAMPLE_RATE,
        "n_fft": 400,
        "hop_length": HOP_LENGTH,
        "n_mels": n_mels,
        "window_frames": WINDOW_FRAMES,
        "conv_layers": [list(layer) for layer in model.config["encoder_conv_layers"]],
        "projector": {
            "type": projector.projector_type,
            "pool_stride": projector.pool_stride,
            "qformer_window": projector.qformer_window,
            "qformer_queries": projector.qformer_queries,
        },
    }


def _prompt(model: TinyAudioModel) -> dict[str, Any]:
    """Prompt ids around the `<audio>` slots, checked against the chat template."""
    reference = ReferenceTranscriber(model)
    audio = model.audio_token_id

    def around(instruction: str | None) -> tuple[list[int], list[int]]:
        ids = reference.prompt_ids(3, instruction)[0].tolist()
        first = ids.index(audio)
        prefix, suffix = ids[:first], ids[first + 3 :]
        if reference.prompt_ids(7, instruction)[0].tolist() != prefix + [audio] * 7 + suffix:
            raise TinyAudioError("the chat template does not keep the audio slots contiguous")
        return prefix, suffix

    prefix, suffix = around(None)
    turn_prefix, turn_suffix = around("")
    return {
        "prefix_ids": prefix,
        "suffix_ids": suffix,
        "audio_token_id": audio,
        "stop_ids": model.eos_token_ids,
        "instruction": model.prompt.instruction,
        "placement": model.prompt.placement,
        "system_prompt": model.system_prompt,
        # For a custom instruction: turn_prefix + [text] + audio + [" " + text] + turn_suffix.
        "turn_prefix_ids": turn_prefix,
        "turn_suffix_ids": turn_suffix,
        "max_new_tokens": model.max_new_tokens,
    }


def _tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
