"""Writes random-weight checkpoints in upstream tiny-audio's exact on-disk format.

Three directories, as a user would have after downloading: an audio-encoder repo (GLM-ASR layout
with `audio_tower.*` tensors, or Whisper's `model.encoder.*`), an LLM repo (transformers layout,
tokenizer included) and the tiny-audio checkpoint (config.json with upstream's keys,
model.safetensors with `projector.*` [+ `language_model.*`], optional PEFT adapter files).
Tests build every projector type and historical variant with it; presets build real sizes with it.
The projector tensors are generated from upstream's key names and shapes, independently of the
builder in projectors.py, so loading them is a real check of that builder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    Blip2QFormerConfig,
    Blip2QFormerModel,
    GlmAsrConfig,
    GlmAsrEncoder,
    WhisperConfig,
    WhisperFeatureExtractor,
)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from tinyaudio.export.language_model import load_tokenizer
from tinyaudio.export.preset_tokenizer import build_preset_tokenizer
from tinyaudio.registry import EncoderSpec, LLMSpec, check_projector_type
from tinyaudio.runtime.lengths import DEFAULT_CONV_LAYERS

MLP_VARIANTS = ("current", "no_norm_2", "biased")  # ≥2026-05-06, 2026-01-26…05-06, 2026-01 era
MOSA_ADAPTER_HIDDEN, MOSA_ROUTER_HIDDEN = 4096, 512  # upstream MOSAProjector constants


@dataclass(frozen=True)
class CheckpointRecipe:
    projector: str = "mlp"
    projector_hidden_dim: int | None = None
    mlp_variant: str = "current"
    fine_tuned_llm: bool = False
    lora: tuple[int, int] | None = None  # (rank, alpha) on q_proj and v_proj
    system_prompt: str = ""
    max_new_tokens: int = 128
    num_experts: int = 4
    qformer_num_heads: int = 16
    seed: int = 0


def _save(tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype) -> None:
    save_file({k: v.detach().to(dtype).contiguous() for k, v in tensors.items()}, str(path))


def _feature_extractor(num_mel_bins: int) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(
        feature_size=num_mel_bins, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )


def write_encoder(spec: EncoderSpec, directory: Path, seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    """An encoder repo. For GLM-ASR only the audio tower's tensors are written: tiny-audio
    discards GLM-ASR's own LLM and projector, and the loader reads nothing else."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    common = {"num_mel_bins": spec.num_mel_bins}
    if spec.kind == "glmasr":
        config = GlmAsrConfig(
            audio_config={
                **common,
                "hidden_size": spec.hidden_size,
                "num_hidden_layers": spec.num_layers,
                "num_attention_heads": spec.num_heads,
                "num_key_value_heads": spec.num_heads,
                "intermediate_size": spec.intermediate_size,
                "initializer_range": spec.hidden_size**-0.5,
            }
        )
        module, prefix = GlmAsrEncoder(config.audio_config), "audio_tower."
    else:
        config = WhisperConfig(
            **common,
            d_model=spec.hidden_size,
            encoder_layers=spec.num_layers,
            encoder_attention_heads=spec.num_heads,
            encoder_ffn_dim=spec.intermediate_size,
            decoder_layers=1,
            decoder_attention_heads=spec.num_heads,
            decoder_ffn_dim=spec.intermediate_size,
            max_source_positions=1500,
            init_std=spec.hidden_size**-0.5,
        )
        module, prefix = WhisperEncoder(config), "model.encoder."
    config.save_pretrained(directory)
    _save({prefix + k: v for k, v in module.state_dict().items()}, directory / "model.safetensors",
          dtype)  # fmt: skip
    _feature_extractor(spec.num_mel_bins).save_pretrained(directory)
    return directory


def write_llm(spec: LLMSpec, directory: Path, seed: int = 0, tokenizer_dir: Path | None = None,
              dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    """An LLM repo; its tokenizer is copied from ``tokenizer_dir`` or built offline."""
    directory.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is None:
        build_preset_tokenizer(directory)
    else:
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (tokenizer_dir / name).exists():
                shutil.copy(tokenizer_dir / name, directory / name)
    added = json.loads((directory / "tokenizer.json").read_text())["added_tokens"]
    special = {token["content"]: token["id"] for token in added}
    torch.manual_seed(seed)
    config = AutoConfig.for_model(
        spec.family,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        intermediate_size=spec.intermediate_size,
        vocab_size=spec.vocab_size,
        tie_word_embeddings=spec.tie_word_embeddings,
        max_position_embeddings=40960,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        bos_token_id=special["<|endoftext|>"],
        eos_token_id=special["<|im_end|>"],
        pad_token_id=special["<|endoftext|>"],
        # Unit-scale activations at any width, so random models give varied, audio-dependent
        # tokens (HF's default 0.02 makes tiny models emit one token forever).
        initializer_range=spec.hidden_size**-0.5,
    )
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(directory)
    return directory


def _linear(out_dim: int, in_dim: int, bias: bool, name: str) -> dict[str, torch.Tensor]:
    tensors = {f"{name}.weight": torch.randn(out_dim, in_dim) / in_dim**0.5}
    if bias:
        tensors[f"{name}.bias"] = 0.1 * torch.randn(out_dim)
    return tensors


def _norm(dim: int, name: str) -> dict[str, torch.Tensor]:
    # Far from 1 so that a norm applied, skipped or misplaced changes the output visibly.
    return {f"{name}.weight": 1.0 + 0.5 * torch.randn(dim)}


def projector_tensors(
    recipe: CheckpointRecipe, encoder_dim: int, llm_dim: int, pool_stride: int = 4
) -> dict[str, torch.Tensor]:
    """Random projector weights under upstream's key names (without the `projector.` prefix)."""
    kind = check_projector_type(recipe.projector)
    torch.manual_seed(recipe.seed + 1)
    stacked = encoder_dim * pool_stride
    hidden = recipe.projector_hidden_dim or llm_dim
    t: dict[str, torch.Tensor] = {}
    if kind == "mlp":
        if recipe.mlp_variant not in MLP_VARIANTS:
            raise ValueError(f"unknown mlp variant {recipe.mlp_variant!r}")
        biased = recipe.mlp_variant == "biased"
        hidden = 2 * llm_dim if biased else hidden
        t |= _linear(hidden, stacked, biased, "linear_1")
        t |= {} if biased else _norm(hidden, "norm")
        t |= _linear(llm_dim, hidden, biased, "linear_2")
        t |= _norm(llm_dim, "norm_2") if recipe.mlp_variant == "current" else {}
    elif kind == "mosa":
        for index, (out_dim, in_dim) in (
            (0, (encoder_dim, encoder_dim)),
            (2, (llm_dim, encoder_dim)),
        ):
            t[f"downsampler.{index}.weight"] = torch.randn(out_dim, in_dim, 3) / (3 * in_dim) ** 0.5
            t[f"downsampler.{index}.bias"] = 0.1 * torch.randn(out_dim)
        t |= _linear(MOSA_ROUTER_HIDDEN, llm_dim, True, "router.0")
        t |= _linear(recipe.num_experts, MOSA_ROUTER_HIDDEN, True, "router.2")
        for i in range(recipe.num_experts):
            t |= _linear(MOSA_ADAPTER_HIDDEN, llm_dim, True, f"experts.{i}.fc1")
            t |= _linear(llm_dim, MOSA_ADAPTER_HIDDEN, True, f"experts.{i}.fc2")
    elif kind == "moe":
        t |= _norm(stacked, "norm")
        # Large router weights make the top-2 choice differ from token to token.
        t["router.weight"] = 3.0 * torch.randn(recipe.num_experts, stacked) / stacked**0.5
        for name in ["shared_expert", *(f"experts.{i}" for i in range(recipe.num_experts))]:
            t |= _linear(hidden, stacked, True, f"{name}.fc1")
            t |= _linear(llm_dim, hidden, True, f"{name}.fc2")
    else:
        qformer = Blip2QFormerModel(
            Blip2QFormerConfig(
                hidden_size=encoder_dim,
                num_hidden_layers=2,
                num_attention_heads=recipe.qformer_num_heads,
                intermediate_size=4 * encoder_dim,
                encoder_hidden_size=encoder_dim,
                cross_attention_frequency=1,
                hidden_act="gelu",
                layer_norm_eps=1e-12,
            )
        )
        t["query"] = torch.randn(1, 3, encoder_dim)
        t |= {
            f"qformer.{k}": v + 0.02 * torch.randn_like(v) for k, v in qformer.state_dict().items()
        }
        t |= _linear(llm_dim, encoder_dim, True, "linear")
    return t


def _asr_config(
    recipe: CheckpointRecipe, encoder_dir: Path, llm_dir: Path, ids: tuple[str, str], vocab: int
) -> dict:
    """config.json with the keys upstream's ASRConfig saves (reference §1.3)."""
    audio_config = json.loads((encoder_dir / "config.json").read_text())
    text_config = json.loads((llm_dir / "config.json").read_text())
    text_config["vocab_size"] = vocab
    return {
        "model_type": "asr_model",
        "architectures": ["ASRModel"],
        "is_composition": True,
        "pipeline_tag": "automatic-speech-recognition",
        "auto_map": {
            "AutoConfig": "asr_config.ASRConfig",
            "AutoModel": "asr_modeling.ASRModel",
            "AutoModelForSpeechSeq2Seq": "asr_modeling.ASRModel",
            "AutoProcessor": "asr_processing.ASRProcessor",
        },
        "audio_model_id": ids[0],
        "text_model_id": ids[1],
        "attn_implementation": "sdpa",
        "model_dtype": "float32",
        "system_prompt": recipe.system_prompt,
        "encoder_dim": audio_config.get("audio_config", audio_config).get("hidden_size")
        or audio_config.get("d_model"),
        "llm_dim": text_config["hidden_size"],
        "encoder_conv_layers": [list(layer) for layer in DEFAULT_CONV_LAYERS],
        "audio_sample_rate": 16000,
        "projector_pool_stride": 4,
        "downsample_rate": 5,
        "projector_hidden_dim": recipe.projector_hidden_dim,
        "projector_type": recipe.projector,
        "num_experts": recipe.num_experts,
        "num_experts_per_tok": 2,
        "router_aux_loss_coef": 0.01,
        "qformer_window_size": 15,
        "qformer_hidden_size": None,
        "qformer_num_layers": 2,
        "qformer_num_heads": recipe.qformer_num_heads,
        "use_lora": recipe.lora is not None,
        "lora_rank": recipe.lora[0] if recipe.lora else 8,
        "lora_alpha": recipe.lora[1] if recipe.lora else 32,
        "lora_dropout": 0.0,
        "freeze_language_model": not recipe.fine_tuned_llm,
        "max_new_tokens": recipe.max_new_tokens,
        "min_new_tokens": 0,
        "num_beams": 1,
        "do_sample": False,
        "repetition_penalty": 1.0,
        "length_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "use_cache": True,
        "audio_config": audio_config,
        "text_config": text_config,
        "vocab_size": vocab,
    }


def write_checkpoint(
    recipe: CheckpointRecipe,
    directory: Path,
    encoder_dir: Path,
    llm_dir: Path,
    encoder_id: str | None = None,
    llm_id: str | None = None,
) -> Path:
    """The tiny-audio checkpoint for ``recipe`` on top of existing encoder/LLM repos.

    config.json names them ``encoder_id`` / ``llm_id`` (a hub id or a path; default: the
    directories' absolute paths), as upstream's audio_model_id / text_model_id do.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(llm_dir)
    ids = (encoder_id or str(encoder_dir.resolve()), llm_id or str(llm_dir.resolve()))
    config = _asr_config(recipe, encoder_dir, llm_dir, ids, len(tokenizer))
    encoder_dim, llm_dim = config["encoder_dim"], config["llm_dim"]
    tensors = {
        f"projector.{k}": v for k, v in projector_tensors(recipe, encoder_dim, llm_dim).items()
    }
    if recipe.fine_tuned_llm or recipe.lora:
        base = AutoModelForCausalLM.from_pretrained(str(llm_dir), dtype=torch.float32)
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        torch.manual_seed(recipe.seed + 2)
    if recipe.fine_tuned_llm:
        for name, value in base.state_dict().items():
            if name != "lm_head.weight":  # tied: upstream's save drops the alias
                tensors[f"language_model.{name}"] = value + 0.01 * torch.randn_like(value)
    if recipe.lora:
        _write_lora(recipe.lora, base, directory)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    _save(tensors, directory / "model.safetensors", torch.float32)
    tokenizer.save_pretrained(directory)
    preprocessor = json.loads((encoder_dir / "preprocessor_config.json").read_text())
    preprocessor |= {
        "processor_class": "ASRProcessor",
        "auto_map": {"AutoProcessor": "asr_processing.ASRProcessor"},
        "padding": False,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return directory


LORA_TARGETS = ("q_proj", "v_proj")  # upstream's stage 2 adapts these


def _write_lora(lora: tuple[int, int], base, directory: Path) -> None:
    """A PEFT adapter in PEFT's own file format, with non-zero B so the merge matters."""
    rank, alpha = lora
    tensors = {}
    for name, module in base.named_modules():
        if name.rsplit(".", 1)[-1] in LORA_TARGETS:
            tensors[f"base_model.model.{name}.lora_A.weight"] = (
                torch.randn(rank, module.in_features) / module.in_features**0.5
            )
            tensors[f"base_model.model.{name}.lora_B.weight"] = 0.05 * torch.randn(
                module.out_features, rank
            )
    write_adapter(tensors, rank, alpha, directory)


def write_adapter(tensors: dict[str, torch.Tensor], rank: int, alpha: int, directory: Path) -> None:
    """LoRA tensors (PEFT names) → adapter_model.safetensors + adapter_config.json, as PEFT's
    save_pretrained writes them; config.json must say use_lora for upstream to attach them."""
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "",
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": sorted({n.split(".lora_")[0].rsplit(".", 1)[-1] for n in tensors}),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
