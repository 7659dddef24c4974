"""A tiny-audio checkpoint directory as upstream writes it, read without executing any of its code.

config.json gives the settings (with upstream ASRConfig's defaults for absent keys),
model.safetensors the projector and, for fine-tuned decoders, the LLM, and the optional PEFT files
a LoRA adapter. The prompt format is read from the checkpoint's own asr_modeling.py *as text*,
because it changed over upstream's history (suffix instruction, no instruction, "Transcribe: ").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.lengths import DEFAULT_CONV_LAYERS

# Upstream ASRConfig.__init__ defaults, applied when config.json lacks the key.
CONFIG_DEFAULTS: dict[str, Any] = {
    "audio_model_id": "zai-org/GLM-ASR-Nano-2512",
    "text_model_id": "Qwen/Qwen3-0.6B",
    "system_prompt": "You are a helpful assistant.",
    "projector_type": "mlp",
    "projector_pool_stride": 4,
    "encoder_conv_layers": [list(layer) for layer in DEFAULT_CONV_LAYERS],
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "qformer_window_size": 15,
    "downsample_rate": 5,
    "qformer_num_heads": 16,
    "max_new_tokens": 128,
    "use_lora": False,
}
CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "audio_model_id": str,
    "text_model_id": str,
    "system_prompt": str,
    "projector_type": str,
    "projector_pool_stride": int,
    "encoder_conv_layers": list,
    "num_experts": int,
    "num_experts_per_tok": int,
    "qformer_window_size": int,
    "downsample_rate": int,
    "qformer_num_heads": int,
    "max_new_tokens": int,
    "use_lora": bool,
}

CURRENT_INSTRUCTION = "Transcribe the speech to text"


@dataclass(frozen=True)
class PromptFormat:
    """How the user turn is built: instruction after the audio (" " joined) or before it."""

    instruction: str = CURRENT_INSTRUCTION
    placement: str = "suffix"  # "suffix": <audio>*N + " " + text; "prefix": text + <audio>*N

    def user_content(self, num_audio_tokens: int, instruction: str | None = None) -> str:
        text = self.instruction if instruction is None else instruction
        audio = "<audio>" * num_audio_tokens
        if self.placement == "prefix":
            return text + audio
        return audio + " " + text if text else audio


@dataclass
class LoraAdapter:
    scale: float
    tensors: dict[str, torch.Tensor]  # PEFT names: base_model.model.<module>.lora_{A,B}.weight


class TensorFiles:
    """The tensors of safetensors files under one name prefix, read one at a time on demand.

    A model's weights are never all in memory at once: a loader copies each tensor into its
    (FP32) module and drops it, so loading a bf16 checkpoint peaks at the module's size, not at
    the module plus the whole checkpoint."""

    def __init__(self, paths: list[Path], prefix: str = "") -> None:
        self.prefix = prefix
        self.where: dict[str, Path] = {}
        self.shapes: dict[str, list[int]] = {}  # from the headers: no tensor is read for them
        for path in paths:
            try:
                with safe_open(str(path), framework="pt") as f:
                    for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                        name = key[len(prefix) :]
                        if key.startswith(prefix) and name not in self.where:
                            self.where[name] = path
                            self.shapes[name] = list(f.get_slice(key).get_shape())
            except (SafetensorError, OSError) as exc:
                raise TinyAudioError(f"cannot read {path}: {exc}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def __len__(self) -> int:
        return len(self.where)

    def names(self) -> list[str]:
        return list(self.where)

    def get(self, name: str) -> torch.Tensor:
        with safe_open(str(self.where[name]), framework="pt") as f:
            return f.get_tensor(self.prefix + name)

    def load(self) -> dict[str, torch.Tensor]:
        return {name: self.get(name) for name in self.where}


def check_tensors(
    expected: dict[str, list[int]],
    found: TensorFiles,
    where: str,
    optional: frozenset[str] = frozenset(),
    extra_ok: bool = False,
) -> None:
    """Every expected tensor (bar ``optional``) present with its shape; nothing else unless
    ``extra_ok`` (a GLM-ASR repo also holds its own LLM, which the encoder ignores)."""
    missing = sorted(set(expected) - set(found.names()) - optional)
    unexpected = [] if extra_ok else sorted(set(found.names()) - set(expected))
    if missing or unexpected:
        raise TinyAudioError(
            f"{where} do not match the config: {len(missing)} missing {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}"
        )
    for name in sorted(set(found.names()) & set(expected)):
        if found.shapes[name] != list(expected[name]):
            raise TinyAudioError(
                f"tensor shape mismatch in {where}: {name} is {found.shapes[name]}, "
                f"config says {list(expected[name])}"
            )


@dataclass
class Checkpoint:
    directory: Path
    config: dict[str, Any]  # config.json with upstream defaults filled in
    projector: dict[str, torch.Tensor]  # projector.* of model.safetensors, prefix removed
    language_model: TensorFiles  # language_model.* (a fine-tuned decoder), read when needed
    adapter: LoraAdapter | None
    prompt: PromptFormat


def read_checkpoint(directory: Path) -> Checkpoint:
    config = read_config(directory)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise TinyAudioError(f"checkpoint {directory} has no model.safetensors")
    projector = TensorFiles([weights], "projector.")
    if not len(projector):
        raise TinyAudioError(f"{weights} holds no projector.* tensors: not a tiny-audio checkpoint")
    adapter = read_adapter(directory) if config["use_lora"] else None
    fine_tuned = TensorFiles([weights], "language_model.")
    prompt = read_prompt_format(directory)
    return Checkpoint(directory, config, projector.load(), fine_tuned, adapter, prompt)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise TinyAudioError(f"cannot read {path}: {exc}") from None


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TinyAudioError(f"missing {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TinyAudioError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TinyAudioError(f"{path} must hold a JSON object")
    return data


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise TinyAudioError(f"checkpoint {directory} has no config.json")
    config = {**CONFIG_DEFAULTS, **read_json(path)}
    for key, kind in CONFIG_TYPES.items():
        value = config[key]
        if value is None and key == "system_prompt":
            config[key] = ""
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TinyAudioError(
                f"{path}: '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}"
            )
    return config


def read_adapter(directory: Path) -> LoraAdapter | None:
    """PEFT LoRA files; upstream attaches them only when config.use_lora is set."""
    config_path = directory / "adapter_config.json"
    weights = directory / "adapter_model.safetensors"
    if not config_path.is_file():
        return None
    config = read_json(config_path)
    if not weights.is_file():
        raise TinyAudioError(f"{config_path} exists but {weights.name} is missing")
    for unsupported in ("use_dora", "use_qalora"):
        if config.get(unsupported):
            raise TinyAudioError(f"{config_path}: {unsupported} adapters are not supported")
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if not isinstance(rank, int) or not isinstance(alpha, (int, float)) or rank <= 0:
        raise TinyAudioError(f"{config_path}: 'r' and 'lora_alpha' must be positive numbers")
    scale = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
    return LoraAdapter(scale=scale, tensors=load_safetensors(weights))


_PROMPT_RE = re.compile(r'^\s*TRANSCRIBE_PROMPT\s*=\s*"([^"]*)"', re.MULTILINE)


def read_prompt_format(directory: Path) -> PromptFormat:
    """The instruction and its placement from the checkpoint's asr_modeling.py, read as text."""
    code_path = directory / "asr_modeling.py"
    if not code_path.is_file():
        return PromptFormat()
    code = code_path.read_text(encoding="utf-8", errors="replace")
    match = _PROMPT_RE.search(code)
    if not match:
        return PromptFormat()
    placement = "prefix" if "self.TRANSCRIBE_PROMPT + audio_placeholder" in code else "suffix"
    return PromptFormat(instruction=match.group(1), placement=placement)


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files of a transformers model directory (sharded or not)."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        return [directory / s for s in shards]
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise TinyAudioError(f"{directory} has no .safetensors weights")
    return files
