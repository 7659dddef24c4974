"""Random-weight presets: written once to the cache in upstream format, then loaded like any
downloaded checkpoint. Writing to disk first is what makes "same code path" true."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from tinyaudio.export.factory import CheckpointRecipe, write_checkpoint, write_encoder, write_llm
from tinyaudio.registry import PresetEntry, cache_root

FORMAT = "v2"  # bump when the factory's output changes, so stale caches are rebuilt


def materialize_preset(entry: PresetEntry, projector: str | None = None) -> Path:
    """The preset's checkpoint directory, built on first use (atomically: a crash leaves none)."""
    projector = projector or entry.projector
    final = cache_root() / "presets" / f"{entry.name}-{projector}-{FORMAT}"
    if (final / "checkpoint" / "config.json").is_file():
        return final / "checkpoint"
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        # Hub checkpoints keep the encoder and LLM in bf16; so do presets (half the disk).
        dtype = torch.bfloat16
        encoder = write_encoder(entry.encoder, work / "encoder", entry.seed, dtype)
        llm = write_llm(entry.llm, work / "llm", entry.seed, dtype=dtype)
        recipe = CheckpointRecipe(
            projector=projector, projector_hidden_dim=entry.projector_hidden_dim, seed=entry.seed
        )
        # config.json names the encoder/LLM by absolute path: write it for the final location.
        ids = {"encoder_id": str(final / "encoder"), "llm_id": str(final / "llm")}
        write_checkpoint(recipe, work / "checkpoint", encoder, llm, **ids)
        if final.exists():  # an incomplete build from a killed process
            shutil.rmtree(final)
        work.replace(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final / "checkpoint"
