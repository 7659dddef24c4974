"""The frozen audio encoder named by ``audio_model_id``: GLM-ASR-Nano's audio tower or Whisper's.

Upstream loads the whole GLM-ASR model (1.5 B, with trust_remote_code) and keeps `.audio_tower`;
we build transformers' own GlmAsrEncoder / WhisperEncoder from the config and read only the
encoder's tensors from the safetensors files, one at a time: same weights, a third of the memory,
no remote code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, GlmAsrEncoder, PretrainedConfig, WhisperFeatureExtractor
from transformers.initialization import no_init_weights
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.checkpoint import TensorFiles, check_tensors, weight_files
from tinyaudio.runtime.lengths import HOP_LENGTH, SAMPLE_RATE

log = logging.getLogger("tinyaudio")

# model_type in the encoder repo's config.json → (sub-config attribute, key prefixes in the
# weights). GLM-ASR-Nano-2512 keeps `audio_tower.*`; transformers' newer GlmAsr classes save
# `model.audio_tower.*`.
_LAYOUTS = {
    "glmasr": ("audio_config", ("audio_tower.", "model.audio_tower.")),
    "glmasr_encoder": (None, ("", "audio_tower.", "model.audio_tower.")),
    "whisper": (None, ("model.encoder.", "encoder.")),
}
# GLM-ASR-Nano as published before its transformers port (2025-12-27), for remote code only.
PRE_TRANSFORMERS_PREFIX = "audio_encoder.whisper."
N_FFT = 400
FRONT_END_FILES = ("preprocessor_config.json", "processor_config.json")


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


@dataclass(frozen=True)
class EncoderInfo:
    """The encoder repo as read from its configs: what the export needs before (or without)
    loading the weights, and what loading them needs."""

    directory: Path
    model_type: str  # config.json's: picks the weight layout
    config: PretrainedConfig  # the encoder's own (GLM-ASR's audio_config)
    feature_extractor: WhisperFeatureExtractor

    @property
    def kind(self) -> str:
        return "whisper" if self.model_type == "whisper" else "glmasr"

    @property
    def hidden_size(self) -> int:
        return getattr(self.config, "hidden_size", None) or self.config.d_model


def read_encoder_info(directory: Path) -> EncoderInfo:
    config, sub_config = _read_config(directory)
    extractor = read_feature_extractor(directory, sub_config.num_mel_bins)
    return EncoderInfo(directory, config.model_type, sub_config, extractor)


def load_encoder(info: EncoderInfo | Path, dtype: torch.dtype = torch.float32) -> AudioEncoder:
    """The encoder's weights, one tensor at a time, under whichever prefix its repo uses."""
    info = info if isinstance(info, EncoderInfo) else read_encoder_info(info)
    with no_init_weights():
        module = (WhisperEncoder if info.kind == "whisper" else GlmAsrEncoder)(info.config)
    expected = module.state_dict()
    files = weight_files(info.directory)
    found = max(
        (TensorFiles(files, prefix) for prefix in _LAYOUTS[info.model_type][1]),
        key=lambda tensors: len(set(expected) & set(tensors.names())),
    )
    shapes = {name: list(tensor.shape) for name, tensor in expected.items()}
    where = f"audio encoder weights in {info.directory} (under '{found.prefix}')"
    check_tensors(shapes, found, where, extra_ok=True)
    with torch.no_grad():
        for name, target in expected.items():  # one tensor at a time: no second copy
            target.copy_(found.get(name))
    module = module.to(dtype).eval().requires_grad_(False)
    return AudioEncoder(info.kind, module, info.feature_extractor, info.hidden_size)


def _read_config(directory: Path):
    """(the repo's config, the encoder's own config within it)."""
    if len(TensorFiles(weight_files(directory), PRE_TRANSFORMERS_PREFIX)):
        raise TinyAudioError(
            f"audio encoder {directory} is GLM-ASR-Nano as published before its transformers "
            f"port ({PRE_TRANSFORMERS_PREFIX}* tensors): download zai-org/GLM-ASR-Nano-2512 again"
        )
    if not (directory / "config.json").is_file():
        raise TinyAudioError(f"audio encoder {directory} has no config.json")
    try:
        config = AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TinyAudioError(f"cannot read encoder config in {directory}: {first}") from None
    if config.model_type not in _LAYOUTS:
        raise TinyAudioError(
            f"audio encoder {directory} has model_type '{config.model_type}'; supported: "
            f"{', '.join(_LAYOUTS)} (GLM-ASR-Nano or Whisper)"
        )
    sub = _LAYOUTS[config.model_type][0]
    return config, getattr(config, sub) if sub else config


def read_feature_extractor(directory: Path, num_mel_bins: int) -> WhisperFeatureExtractor:
    """The front end's settings from preprocessor_config.json or processor_config.json (what
    transformers 5 writes); from the encoder's mel count, with a warning, when the repo has
    neither. Settings our log-mel front end does not implement are refused."""
    if any((directory / name).is_file() for name in FRONT_END_FILES):
        try:
            extractor = WhisperFeatureExtractor.from_pretrained(str(directory))
        except (OSError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TinyAudioError(
                f"audio encoder {directory}: bad front-end config: {first}"
            ) from None
    else:
        files = " or ".join(FRONT_END_FILES)
        log.warning("audio encoder %s has no %s: using Whisper's front end with the encoder's "
                    "%d mel bins", directory, files, num_mel_bins)  # fmt: skip
        extractor = WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=SAMPLE_RATE,
                                            hop_length=HOP_LENGTH, n_fft=N_FFT)  # fmt: skip
    wanted = {"feature_size": num_mel_bins, "sampling_rate": SAMPLE_RATE,
              "hop_length": HOP_LENGTH, "n_fft": N_FFT}  # fmt: skip
    for key, value in wanted.items():
        if getattr(extractor, key, None) != value:
            raise TinyAudioError(
                f"audio encoder {directory}: its front end has {key} "
                f"{getattr(extractor, key, None)}, the encoder needs {value}"
            )
    return extractor
