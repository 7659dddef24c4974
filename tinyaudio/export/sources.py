"""Where model files come from: a local directory, or a Hugging Face hub id fetched to the cache.

Only data files are fetched (configs, safetensors, tokenizer). Upstream's remote-code files are
fetched as text to read the prompt format from, and never imported.
"""

from __future__ import annotations

from pathlib import Path

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.packaged import packaged_directory

CHECKPOINT_FILES = [
    "config.json",
    "model.safetensors",
    "adapter_config.json",
    "adapter_model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "asr_modeling.py",
]
WEIGHT_FILES = [
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
]


def looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") != 1


def resolve_directory(source: str, what: str, patterns: list[str], flag: str) -> Path:
    """A local directory as is, a converted PyPI-packaged model (``pypi:<dist>==<version>``) or a
    hub snapshot; ``flag`` names the option that overrides it."""
    if source.startswith("pypi:"):
        return packaged_directory(source)
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise TinyAudioError(f"{what} '{source}' is a file, expected a directory")
    if looks_like_path(source):
        raise TinyAudioError(f"{what} directory not found: {source}")
    return _download(source, what, patterns, flag)


def _download(repo_id: str, what: str, patterns: list[str], flag: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # the hub client raises many types for one situation: not reachable
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TinyAudioError(
            f"cannot get {what} '{repo_id}' from the Hugging Face hub ({type(exc).__name__}: "
            f"{reason[:160]}); download it where the hub is reachable "
            f"(`hf download {repo_id} --local-dir DIR`) and pass {flag} DIR"
        ) from None
