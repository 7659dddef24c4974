"""`--model NAME|HUB_ID|DIR` → a loaded tiny-audio model: encoder, projector, LLM, tokenizer.

Registry presets are first written to disk in upstream format, so from here on a random preset, a
hub checkpoint and a local directory take exactly the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.checkpoint import PromptFormat, read_checkpoint
from tinyaudio.export.encoder import AudioEncoder, load_encoder
from tinyaudio.export.language_model import load_language_model, load_tokenizer
from tinyaudio.export.projectors import Projector, build_projector
from tinyaudio.export.sources import CHECKPOINT_FILES, WEIGHT_FILES, resolve_directory
from tinyaudio.registry import Registry, check_projector_type, load_registry
from tinyaudio.runtime.lengths import conv_output_length, mel_frames


@dataclass
class TinyAudioModel:
    source: str
    directory: Path
    config: dict[str, Any]
    encoder: AudioEncoder
    projector: Projector
    language_model: PreTrainedModel
    tokenizer: Any
    prompt: PromptFormat
    lora_merged: bool

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
) -> TinyAudioModel:
    """Load a tiny-audio checkpoint exactly as upstream assembles it, without its remote code.

    ``encoder_dir`` / ``llm_dir`` replace the config's ``audio_model_id`` / ``text_model_id``
    (for machines that cannot reach the hub). ``projector`` must agree with the checkpoint.
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
    encoder = load_encoder(encoder_path, dtype)
    tokenizer = load_tokenizer(llm_path)
    language_model = load_language_model(
        llm_path,
        tokenizer,
        checkpoint.with_prefix("language_model."),
        checkpoint.adapter,
        dtype,
    )
    projector_module = build_projector(
        checkpoint.with_prefix("projector."),
        config,
        encoder_dim=encoder.hidden_size,
        llm_dim=language_model.config.hidden_size,
    ).to(dtype)
    return TinyAudioModel(
        source=model,
        directory=directory,
        config=config,
        encoder=encoder,
        projector=projector_module,
        language_model=language_model,
        tokenizer=tokenizer,
        prompt=checkpoint.prompt,
        lora_merged=checkpoint.adapter is not None,
    )


def _beside(source: str, checkpoint: Path) -> str:
    """A `./` or `../` id in config.json names a directory relative to the checkpoint itself, so
    a checkpoint that carries its encoder and LLM (the demo model) loads from any working dir."""
    if source.startswith(("./", "../")):
        return str((checkpoint / source).resolve())
    return source
