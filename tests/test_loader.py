"""Checkpoint loading: prompt ids, fine-tuned and LoRA decoders, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.checkpoint import read_prompt_format
from tinyaudio.export.loader import load_model
from tinyaudio.export.reference import ReferenceTranscriber

# Reference §5.3: upstream's prompt around N audio tokens, system prompt "".
PREFIX = [151644, 872, 198]
SUFFIX = [4058, 3114, 279, 8806, 311, 1467, 151645, 198, 151644, 77091, 198, 151667, 271, 151668,
          271]  # fmt: skip


@pytest.mark.parametrize("count", [0, 1, 75, 375])
def test_prompt_ids_follow_upstream(make_checkpoint, count):
    model = load_model(str(make_checkpoint()))
    ids = ReferenceTranscriber(model).prompt_ids(count)[0].tolist()
    assert ids == PREFIX + [151669] * count + SUFFIX
    assert model.audio_token_id == 151669
    assert model.eos_token_ids == [151645, 151643]
    assert model.language_model.get_input_embeddings().weight.shape[0] == 151670
    assert model.language_model.get_output_embeddings().weight.shape[0] == 151670


def test_system_prompt_and_historical_prompt_formats(make_checkpoint, tmp_path):
    model = load_model(str(make_checkpoint(system_prompt="You are a helpful assistant.")))
    ids = ReferenceTranscriber(model).prompt_ids(2)[0].tolist()
    system = model.tokenizer.encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert ids == system + PREFIX + [151669] * 2 + SUFFIX

    # 2026-01-15 era remote code: instruction before the audio; 2026-04-30: no instruction.
    era = tmp_path / "old"
    era.mkdir()
    (era / "asr_modeling.py").write_text(
        'class ASRModel:\n    TRANSCRIBE_PROMPT = "Transcribe: "\n'
        '    x = {"content": self.TRANSCRIBE_PROMPT + audio_placeholder}\n'
    )
    assert read_prompt_format(era).user_content(2) == "Transcribe: <audio><audio>"
    (era / "asr_modeling.py").write_text('    TRANSCRIBE_PROMPT = ""\n')
    assert read_prompt_format(era).user_content(2) == "<audio><audio>"
    (era / "asr_modeling.py").unlink()
    assert read_prompt_format(era).user_content(1) == "<audio> Transcribe the speech to text"


def test_checkpoint_code_is_never_executed(make_checkpoint, tmp_path):
    checkpoint = tmp_path / "booby-trapped"
    shutil.copytree(make_checkpoint(), checkpoint)
    marker = tmp_path / "executed"
    trap = f"open({str(marker)!r}, 'w').write('x')\n"
    for name in ("asr_modeling.py", "asr_config.py", "projectors.py", "asr_processing.py"):
        (checkpoint / name).write_text(trap)
    load_model(str(checkpoint))
    assert not marker.exists()


def _lm_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_merge_equals_unmerged_peft_forward(make_checkpoint, repos):
    """Our merge vs PEFT's own adapter forward on the stock LLM (the files are PEFT's format)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    checkpoint = make_checkpoint(lora=(4, 16))
    merged = load_model(str(checkpoint))
    assert merged.lora_merged

    base = AutoModelForCausalLM.from_pretrained(str(repos["llm"]), dtype=torch.float32)
    base.resize_token_embeddings(151670, mean_resizing=False)
    peft = PeftModel.from_pretrained(base, str(checkpoint)).eval()
    ids = torch.tensor([[151644, 872, 198, 4058, 3114, 279, 8806, 311, 1467, 151645]])
    want = _lm_logits(peft, ids)
    got = _lm_logits(merged.language_model, ids)
    assert (got - want).abs().max().item() <= 1e-4
    # ...and the adapter matters: without it the logits are far off.
    plain = _lm_logits(load_model(str(make_checkpoint())).language_model, ids)
    assert (plain - want).abs().max().item() > 1e-2


def test_adapter_ignored_unless_use_lora(make_checkpoint, tmp_path):
    checkpoint = tmp_path / "lora-off"
    shutil.copytree(make_checkpoint(lora=(4, 16)), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["use_lora"] = False  # upstream attaches the adapter only when use_lora is set
    (checkpoint / "config.json").write_text(json.dumps(config))
    assert not load_model(str(checkpoint)).lora_merged


def test_fine_tuned_decoder_weights_are_used(make_checkpoint):
    checkpoint = make_checkpoint(fine_tuned_llm=True)
    model = load_model(str(checkpoint))
    saved = load_file(str(checkpoint / "model.safetensors"))
    for name, value in model.language_model.state_dict().items():
        source = saved.get(f"language_model.{name}")
        if source is None:  # tied lm_head: must be the embedding table
            assert name == "lm_head.weight"
            source = saved["language_model.model.embed_tokens.weight"]
        torch.testing.assert_close(value, source, atol=0, rtol=0)


def test_whisper_encoder_checkpoint_loads(make_checkpoint):
    model = load_model(str(make_checkpoint(encoder="whisper")))
    assert model.encoder.kind == "whisper"
    assert model.encoder.feature_extractor.feature_size == 80


def test_projector_mismatch_and_unknown_type(make_checkpoint, tmp_path):
    with pytest.raises(TinyAudioError, match=r"--projector moe does not match.*'mlp'"):
        load_model(str(make_checkpoint()), projector="moe")
    with pytest.raises(TinyAudioError, match="unknown projector type 'conv'"):
        load_model(str(make_checkpoint()), projector="conv")
    checkpoint = tmp_path / "odd"
    shutil.copytree(make_checkpoint(), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["projector_type"] = "swiglu"
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(TinyAudioError, match="unknown projector type 'swiglu'"):
        load_model(str(checkpoint))


def test_missing_files_are_clear_errors(make_checkpoint, tmp_path):
    checkpoint = tmp_path / "no-weights"
    shutil.copytree(make_checkpoint(), checkpoint)
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(TinyAudioError, match=r"has no model.safetensors"):
        load_model(str(checkpoint))
    (checkpoint / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(TinyAudioError, match=r"cannot read .*model.safetensors"):
        load_model(str(checkpoint))
    with pytest.raises(TinyAudioError, match="checkpoint directory not found"):
        load_model(str(tmp_path / "nowhere"))
    with pytest.raises(TinyAudioError, match=r"unknown model 'tiny-randomm'.*tiny-random"):
        load_model("tiny-randomm")


def _cli(*args, env_extra):
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "tinyaudio.export.reference_cli", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [
        {"HF_HUB_OFFLINE": "1"},  # offline machine
        {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"},  # hub unreachable
    ],
    ids=["offline", "unreachable"],
)
def test_hub_unreachable_is_one_clear_line(make_checkpoint, tmp_path, env):
    wav = tmp_path / "a.wav"
    import numpy as np
    import soundfile as sf

    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    env = {**env, "HF_HOME": str(tmp_path / "hf")}
    result = _cli("--model", "mazesmazes/tiny-audio-embedded", str(wav), env_extra=env)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "cannot get checkpoint 'mazesmazes/tiny-audio-embedded'" in error[0]
    assert "--model DIR" in error[0]

    # A local checkpoint whose encoder is a hub id: the message names the override flag.
    checkpoint = tmp_path / "hub-encoder"
    shutil.copytree(make_checkpoint(), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["audio_model_id"] = "zai-org/GLM-ASR-Nano-2512"
    (checkpoint / "config.json").write_text(json.dumps(config))
    result = _cli("--model", str(checkpoint), str(wav), env_extra=env)
    assert result.returncode == 2
    assert "cannot get audio encoder 'zai-org/GLM-ASR-Nano-2512'" in result.stderr
    assert "--encoder-dir DIR" in result.stderr
