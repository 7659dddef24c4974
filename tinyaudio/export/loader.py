"""`--model NAME|HUB_ID|DIR` → a loaded tiny-audio model: encoder, projector, LLM, tokenizer.

Registry presets are first written to disk in upstream format, so from here on a random preset, a
hub checkpoint and a local directory take exactly the same path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel

from tinyaudio import memory
from tinyaudio.errors import TinyAudioError
from tinyaudio.export.checkpoint import Checkpoint, PromptFormat, read_checkpoint
from tinyaudio.export.encoder import AudioEncoder, EncoderInfo, load_encoder, read_encoder_info
from tinyaudio.export.language_model import load_language_model, load_tokenizer, read_llm_config
from tinyaudio.export.projectors import Projector, build_projector
from tinyaudio.export.sources import CHECKPOINT_FILES, WEIGHT_FILES, resolve_directory
from tinyaudio.registry import Registry, check_projector_type, load_registry
from tinyaudio.runtime.lengths import conv_output_length, mel_frames

PARTS = ("encoder", "language_model")  # the large modules, loaded on request


@dataclass
class TinyAudioModel:
    """A checkpoint ready to load: settings, tokenizer and projector in memory; the encoder and
    LLM loaded when asked (``load_model`` loads both unless told otherwise)."""

    source: str
    directory: Path
    config: dict[str, Any]
    checkpoint: Checkpoint
    llm_path: Path
    encoder_info: EncoderInfo
    llm_config: PretrainedConfig
    projector: Projector
    tokenizer: Any
    dtype: torch.dtype
    encoder: AudioEncoder | None = None
    language_model: PreTrainedModel | None = None

    @contextlib.contextmanager
    def holding(self, part: str) -> Iterator[None]:
        """``part`` (encoder or language_model) loaded as that attribute for a with-block and
        freed after it: an export holds one at a time, so it needs the memory of its largest
        part, not of all. (No ``as`` target: a name bound to the module would keep it alive.)"""
        setattr(self, part, self.load(part))
        try:
            yield
        finally:
            setattr(self, part, None)
            memory.release()

    def load(self, part: str) -> Any:
        if part == "encoder":
            return load_encoder(self.encoder_info, self.dtype)
        if part == "language_model":
            fine_tuned, adapter = self.checkpoint.language_model, self.checkpoint.adapter
            return load_language_model(self.llm_path, self.tokenizer, fine_tuned, adapter,
                                       self.dtype)  # fmt: skip
        raise ValueError(f"unknown part {part!r}: one of {PARTS}")

    @property
    def prompt(self) -> PromptFormat:
        return self.checkpoint.prompt

    @property
    def lora_merged(self) -> bool:
        return self.checkpoint.adapter is not None

    @property
    def feature_extractor(self):
        return self.encoder_info.feature_extractor

    @property
    def projector_type(self) -> str:
        return self.projector.projector_type

    @property
    def audio_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids("<audio>")

    @property
    def eos_token_ids(self) -> list[int]:
        """<|im_end|> and <|endoftext|> where the tokenizer has them (upstream's stop ids)."""
        vocab = self.tokenizer.get_vocab()
        return [vocab[t] for t in ("<|im_end|>", "<|endoftext|>") if t in vocab]

    @property
    def system_prompt(self) -> str:
        return self.config["system_prompt"] or ""

    @property
    def max_new_tokens(self) -> int:
        return self.config["max_new_tokens"]

    def encoder_frames(self, mel_length: int) -> int:
        return conv_output_length(mel_length, self.config["encoder_conv_layers"])

    def num_audio_tokens(self, num_samples: int) -> int:
        """`<audio>` slots for a clip of ``num_samples`` at 16 kHz (upstream's length rule)."""
        return self.projector.output_length(self.encoder_frames(mel_frames(num_samples)))


def resolve_checkpoint(
    model: str, projector: str | None = None, registry: Registry | None = None
) -> Path:
    """A registry name, hub id or local directory → the checkpoint directory on disk."""
    registry = registry or load_registry()
    if projector is not None:
        check_projector_type(projector)
    if model in registry.presets:
        from tinyaudio.export.presets import materialize_preset

        return materialize_preset(registry.preset(model), projector)
    if model in registry.checkpoints:
        model = registry.checkpoint(model).repo
    elif "/" not in model and not Path(model).expanduser().is_dir():
        raise TinyAudioError(
            f"unknown model '{model}': not a registry name ({', '.join(registry.names())}), "
            "a hub id (owner/name) or a checkpoint directory"
        )
    return resolve_directory(model, "checkpoint", CHECKPOINT_FILES, "--model")


def load_model(
    model: str,
    projector: str | None = None,
    encoder_dir: str | None = None,
    llm_dir: str | None = None,
    dtype: torch.dtype = torch.float32,
    parts: tuple[str, ...] = PARTS,
) -> TinyAudioModel:
    """Load a tiny-audio checkpoint exactly as upstream assembles it, without its remote code.

    ``encoder_dir`` / ``llm_dir`` replace the config's ``audio_model_id`` / ``text_model_id``
    (for machines that cannot reach the hub). ``projector`` must agree with the checkpoint.
    ``parts`` are loaded now; the others wait for ``TinyAudioModel.holding``.
    """
    directory = resolve_checkpoint(model, projector)
    checkpoint = read_checkpoint(directory)
    config = checkpoint.config
    if projector is not None and projector != config["projector_type"]:
        raise TinyAudioError(
            f"--projector {projector} does not match checkpoint {model}, whose projector is "
            f"'{config['projector_type']}'"
        )
    # "./encoder" in config.json means beside the checkpoint: record where that is.
    for key in ("audio_model_id", "text_model_id"):
        config[key] = _beside(config[key], directory)
    encoder_path = resolve_directory(
        encoder_dir or config["audio_model_id"], "audio encoder", WEIGHT_FILES, "--encoder-dir"
    )
    llm_path = resolve_directory(
        llm_dir or config["text_model_id"], "LLM", WEIGHT_FILES, "--llm-dir"
    )
    encoder_info = read_encoder_info(encoder_path)
    llm_config = read_llm_config(llm_path)
    projector_module = build_projector(
        checkpoint.projector,
        config,
        encoder_dim=encoder_info.hidden_size,
        llm_dim=llm_config.hidden_size,
    ).to(dtype)
    loaded = TinyAudioModel(
        source=model,
        directory=directory,
        config=config,
        checkpoint=checkpoint,
        llm_path=llm_path,
        encoder_info=encoder_info,
        llm_config=llm_config,
        projector=projector_module,
        tokenizer=load_tokenizer(llm_path),
        dtype=dtype,
    )
    for part in parts:
        setattr(loaded, part, loaded.load(part))
    return loaded


def _beside(source: str, checkpoint: Path) -> str:
    """A `./` or `../` id in config.json names a directory relative to the checkpoint itself, so
    a checkpoint that carries its encoder and LLM (the demo model) loads from any working dir."""
    if source.startswith(("./", "../")):
        return str((checkpoint / source).resolve())
    return source
