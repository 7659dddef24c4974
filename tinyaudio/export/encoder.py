"""The frozen audio encoder named by ``audio_model_id``: GLM-ASR-Nano's audio tower or Whisper's.

Upstream loads the whole GLM-ASR model (1.5 B, with trust_remote_code) and keeps `.audio_tower`;
we build transformers' own GlmAsrEncoder / WhisperEncoder from the config and read only the
encoder's tensors from the safetensors files: same weights, a third of the memory, no remote code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, GlmAsrEncoder, WhisperFeatureExtractor
from transformers.initialization import no_init_weights
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.checkpoint import weight_files

# model_type in the encoder repo's config.json → (sub-config attribute, key prefixes in the weights)
_LAYOUTS = {
    "glmasr": ("audio_config", ("audio_tower.",)),
    "glmasr_encoder": (None, ("", "audio_tower.")),
    "whisper": (None, ("model.encoder.", "encoder.")),
}


@dataclass
class AudioEncoder:
    kind: str  # "glmasr" | "whisper"
    module: nn.Module
    feature_extractor: WhisperFeatureExtractor
    hidden_size: int

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, T] log-mel → [B, T', hidden] last hidden state, for any T.

        WhisperEncoder refuses anything but 3000 frames; its layers do not care, so the unpadded
        mode runs them directly with the matching slice of the position table.
        """
        if self.kind == "glmasr":
            return self.module(input_features=features).last_hidden_state
        enc = self.module
        x = nn.functional.gelu(enc.conv1(features))
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        for layer in enc.layers:
            x = layer(x, attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
        return enc.layer_norm(x)


def load_encoder(directory: Path, dtype: torch.dtype = torch.float32) -> AudioEncoder:
    config = _read_config(directory)
    model_type = config.model_type
    if model_type not in _LAYOUTS:
        raise TinyAudioError(
            f"audio encoder {directory} has model_type '{model_type}'; supported: "
            f"{', '.join(_LAYOUTS)} (GLM-ASR-Nano or Whisper)"
        )
    sub, prefixes = _LAYOUTS[model_type]
    enc_config = getattr(config, sub) if sub else config
    with no_init_weights():
        module = (
            GlmAsrEncoder(enc_config)
            if model_type.startswith("glmasr")
            else (WhisperEncoder(enc_config))
        )
    expected = module.state_dict()
    state = _read_tensors(directory, prefixes, expected)
    module.load_state_dict(state, strict=True)
    module = module.to(dtype).eval().requires_grad_(False)
    kind = "whisper" if model_type == "whisper" else "glmasr"
    hidden = getattr(enc_config, "hidden_size", None) or enc_config.d_model
    return AudioEncoder(kind, module, _read_feature_extractor(directory), hidden)


def _read_config(directory: Path):
    if not (directory / "config.json").is_file():
        raise TinyAudioError(f"audio encoder {directory} has no config.json")
    try:
        return AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TinyAudioError(f"cannot read encoder config in {directory}: {first}") from None


def _read_tensors(directory: Path, prefixes: tuple[str, ...], expected: dict) -> dict:
    """Read only the encoder's tensors, under whichever known prefix the repo uses."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                for prefix in prefixes:
                    name = key[len(prefix) :]
                    if key.startswith(prefix) and name in expected and name not in state:
                        state[name] = f.get_tensor(key)
                        break
    missing = sorted(set(expected) - set(state))
    if missing:
        raise TinyAudioError(
            f"audio encoder weights in {directory} lack {len(missing)} of {len(expected)} "
            f"tensors (first: {missing[0]}; looked under prefixes {list(prefixes)})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise TinyAudioError(
                f"tensor shape mismatch in audio encoder {directory}: {name} is "
                f"{list(tensor.shape)}, config says {list(expected[name].shape)}"
            )
    return state


def _read_feature_extractor(directory: Path) -> WhisperFeatureExtractor:
    try:
        return WhisperFeatureExtractor.from_pretrained(str(directory))
    except (OSError, ValueError) as exc:
        raise TinyAudioError(
            f"audio encoder {directory} has no usable preprocessor_config.json ({exc})"
        ) from None
