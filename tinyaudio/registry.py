"""models.toml: the registry of known encoders, LLMs, public checkpoints and random presets.

Torch-free so the runtime and the CLI can list models. Every entry is validated on load, and a bad
one is reported with the entry and the field, never as a KeyError deep inside the loader.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyaudio.errors import TinyAudioError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Jetson's Ubuntu 22.04 ships Python 3.10
    import tomli as tomllib

PROJECTOR_TYPES = ("mlp", "mosa", "moe", "qformer")
ENCODER_KINDS = ("glmasr", "whisper")
LLM_FAMILIES = ("qwen3", "qwen2", "llama")


def cache_root() -> Path:
    """Where presets and benchmark bundles are built once (``TINYAUDIO_CACHE`` overrides)."""
    return Path(os.environ.get("TINYAUDIO_CACHE", Path.home() / ".cache" / "tinyaudio"))


@dataclass(frozen=True)
class EncoderSpec:
    kind: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    num_mel_bins: int
    name: str = ""


@dataclass(frozen=True)
class LLMSpec:
    family: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    name: str = ""


@dataclass(frozen=True)
class CheckpointEntry:
    name: str
    repo: str
    projector: str
    encoder: str
    llm: str
    description: str
    shipped: bool = False  # repo is a directory that ships with tinyaudio ("./DIR")


@dataclass(frozen=True)
class PresetEntry:
    name: str
    description: str
    projector: str
    projector_hidden_dim: int
    seed: int
    encoder: EncoderSpec
    llm: LLMSpec


@dataclass(frozen=True)
class Registry:
    path: Path
    default_model: str
    encoders: dict[str, EncoderSpec]
    llms: dict[str, LLMSpec]
    checkpoints: dict[str, CheckpointEntry]
    presets: dict[str, PresetEntry]

    def names(self) -> list[str]:
        """Names accepted by ``--model`` (checkpoints and presets)."""
        return sorted([*self.checkpoints, *self.presets])

    def checkpoint(self, name: str) -> CheckpointEntry:
        return _lookup(self.checkpoints, name, "checkpoint", self)

    def preset(self, name: str) -> PresetEntry:
        return _lookup(self.presets, name, "preset", self)

    def choose(self, model: str | None, projector: str | None) -> str:
        """``--model`` as given; without it the default model, or with ``--projector`` the
        first checkpoint trained with that projector (a preset takes any projector)."""
        if model:
            return model
        if projector and self.default_model in self.checkpoints:
            return self.checkpoint_for_projector(projector).name
        return self.default_model

    def checkpoint_for_projector(self, projector: str) -> CheckpointEntry:
        """The first checkpoint listed with this projector type (demo's for mlp, then the hub's)."""
        check_projector_type(projector)
        for entry in self.checkpoints.values():
            if entry.projector == projector:
                return entry
        raise TinyAudioError(f"models.toml lists no checkpoint with projector '{projector}'")


def _lookup(table: dict, name: str, kind: str, registry: Registry):
    if name not in table:
        raise TinyAudioError(
            f"unknown {kind} '{name}' (known: {', '.join(sorted(table)) or 'none'}; "
            f"registry {registry.path})"
        )
    return table[name]


def check_projector_type(projector: str) -> str:
    if projector not in PROJECTOR_TYPES:
        raise TinyAudioError(
            f"unknown projector type '{projector}' (choose one of: {', '.join(PROJECTOR_TYPES)})"
        )
    return projector


def default_registry_path() -> Path:
    """models.toml ships inside the wheel; in a source checkout it sits at the repository root."""
    here = Path(__file__).resolve().parent
    packaged = here / "models.toml"
    return packaged if packaged.exists() else here.parent / "models.toml"


def load_registry(path: Path | None = None) -> Registry:
    path = Path(path) if path else default_registry_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TinyAudioError(f"model registry not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TinyAudioError(f"model registry {path} is not valid TOML: {exc}") from None

    known = {"defaults", "encoder", "llm", "checkpoint", "preset"}
    for section in raw:
        if section not in known:
            raise TinyAudioError(f"models.toml: unknown section [{section}]")

    encoders = {
        name: _encoder(f"encoder.{name}", body, name)
        for name, body in _section(raw, "encoder").items()
    }
    llms = {name: _llm(f"llm.{name}", body, name) for name, body in _section(raw, "llm").items()}
    checkpoints = {
        name: _checkpoint(name, body, encoders, llms, path.resolve().parent)
        for name, body in _section(raw, "checkpoint").items()
    }
    presets = {
        name: _preset(name, body, encoders, llms) for name, body in _section(raw, "preset").items()
    }
    defaults = _fields("defaults", raw.get("defaults", {}), {"model": str})
    registry = Registry(path, defaults["model"], encoders, llms, checkpoints, presets)
    if registry.default_model not in registry.names():
        raise TinyAudioError(
            f"models.toml: [defaults] field 'model' names unknown model '{registry.default_model}'"
        )
    return registry


def _section(raw: dict, name: str) -> dict[str, dict]:
    section = raw.get(name, {})
    for entry, body in section.items():
        if not isinstance(body, dict):
            raise TinyAudioError(f"models.toml: [{name}.{entry}] must be a table")
    return section


def _fields(where: str, body: Any, schema: dict[str, type]) -> dict[str, Any]:
    """Check that ``body`` has exactly the schema's fields with the schema's types."""
    if not isinstance(body, dict):
        raise TinyAudioError(f"models.toml: [{where}] must be a table")
    for key in body:
        if key not in schema:
            raise TinyAudioError(f"models.toml: [{where}] has unknown field '{key}'")
    out = {}
    for key, kind in schema.items():
        if key not in body:
            raise TinyAudioError(f"models.toml: [{where}] is missing field '{key}'")
        value = body[key]
        # bool is an int subclass in Python; a registry must not accept true as a layer count.
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if wrong:
            raise TinyAudioError(
                f"models.toml: [{where}] field '{key}' must be {kind.__name__}, "
                f"got {type(value).__name__} {value!r}"
            )
        if kind is int and value <= 0 and key != "seed":
            raise TinyAudioError(f"models.toml: [{where}] field '{key}' must be positive")
        out[key] = value
    return out


def _choice(where: str, field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TinyAudioError(
            f"models.toml: [{where}] field '{field}' is '{value}', expected one of {allowed}"
        )


_ENCODER_SCHEMA = {
    "kind": str,
    "hidden_size": int,
    "num_layers": int,
    "num_heads": int,
    "intermediate_size": int,
    "num_mel_bins": int,
}
_LLM_SCHEMA = {
    "family": str,
    "hidden_size": int,
    "num_layers": int,
    "num_heads": int,
    "num_kv_heads": int,
    "head_dim": int,
    "intermediate_size": int,
    "vocab_size": int,
    "tie_word_embeddings": bool,
}


def _encoder(where: str, body: Any, name: str) -> EncoderSpec:
    spec = _fields(where, body, _ENCODER_SCHEMA)
    _choice(where, "kind", spec["kind"], ENCODER_KINDS)
    if spec["hidden_size"] % spec["num_heads"]:
        raise TinyAudioError(f"models.toml: [{where}] hidden_size must divide by num_heads")
    return EncoderSpec(**spec, name=name)


def _llm(where: str, body: Any, name: str) -> LLMSpec:
    spec = _fields(where, body, _LLM_SCHEMA)
    _choice(where, "family", spec["family"], LLM_FAMILIES)
    if spec["num_heads"] % spec["num_kv_heads"]:
        raise TinyAudioError(f"models.toml: [{where}] num_heads must divide by num_kv_heads")
    return LLMSpec(**spec, name=name)


def _referenced(where: str, field: str, value: Any, table: dict, build):
    """A preset's encoder/llm: a name from the registry or an inline table."""
    if isinstance(value, str):
        if value not in table:
            raise TinyAudioError(
                f"models.toml: [{where}] field '{field}' names unknown {field} '{value}'"
            )
        return table[value]
    return build(f"{where}.{field}", value, "")


def _checkpoint(name: str, body: Any, encoders: dict, llms: dict, here: Path) -> CheckpointEntry:
    """A hub checkpoint, or one shipped with tinyaudio (``repo = "./DIR"``, beside models.toml)."""
    where = f"checkpoint.{name}"
    spec = _fields(
        where,
        body,
        {"repo": str, "projector": str, "encoder": str, "llm": str, "description": str},
    )
    _choice(where, "projector", spec["projector"], PROJECTOR_TYPES)
    _referenced(where, "encoder", spec["encoder"], encoders, _encoder)
    _referenced(where, "llm", spec["llm"], llms, _llm)
    shipped = spec["repo"].startswith("./")
    if shipped:
        spec["repo"] = str(here / spec["repo"])
    return CheckpointEntry(name=name, shipped=shipped, **spec)


def _preset(name: str, body: Any, encoders: dict, llms: dict) -> PresetEntry:
    where = f"preset.{name}"
    spec = _fields(
        where,
        {k: v for k, v in body.items() if k not in ("encoder", "llm")},
        {"description": str, "projector": str, "projector_hidden_dim": int, "seed": int},
    )
    _choice(where, "projector", spec["projector"], PROJECTOR_TYPES)
    for field in ("encoder", "llm"):
        if field not in body:
            raise TinyAudioError(f"models.toml: [{where}] is missing field '{field}'")
    encoder = _referenced(where, "encoder", body["encoder"], encoders, _encoder)
    llm = _referenced(where, "llm", body["llm"], llms, _llm)
    return PresetEntry(name=name, encoder=encoder, llm=llm, **spec)
