"""The decoder LLM and its tokenizer, assembled the way upstream's ASRModel does.

Stock weights come from ``text_model_id``; a fine-tuned decoder (``language_model.*`` in
model.safetensors) replaces them; a PEFT LoRA adapter is merged in (W += alpha/r · B @ A).
The tokenizer is the LLM's, plus the `<audio>` special token, and the embeddings are resized to
the tokenizer's length (Qwen3: 151936 → 151670 rows, so ids ≥ 151670 can never be produced).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.initialization import no_init_weights

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.checkpoint import LoraAdapter, load_safetensors, weight_files

AUDIO_TOKEN = "<audio>"
SUPPORTED_FAMILIES = ("qwen3", "qwen2", "llama")


def load_tokenizer(directory: Path):
    """The LLM's tokenizer with upstream's pad-token rule and `<audio>` added as a special token."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TinyAudioError(f"cannot load the tokenizer in {directory}: {first}") from None
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if "<|finetune_right_pad_id|>" in tokenizer.get_vocab():
            tokenizer.pad_token = "<|finetune_right_pad_id|>"
        elif tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    if AUDIO_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [AUDIO_TOKEN]})
    tokenizer.padding_side = "right"
    return tokenizer


def load_language_model(
    directory: Path,
    tokenizer,
    fine_tuned: dict[str, torch.Tensor],
    adapter: LoraAdapter | None,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    config = AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    if config.model_type not in SUPPORTED_FAMILIES:
        raise TinyAudioError(
            f"LLM {directory} is a '{config.model_type}' model; supported: "
            f"{', '.join(SUPPORTED_FAMILIES)}"
        )
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if fine_tuned:
        # The checkpoint's decoder was saved after the resize: match its row count first.
        model.resize_token_embeddings(fine_tuned["model.embed_tokens.weight"].shape[0])
        _load_strict(model, fine_tuned, "language_model.* in model.safetensors")
    else:
        _load_strict(model, _read_llm_tensors(directory), f"LLM weights in {directory}")
    _resize_to_tokenizer(model, len(tokenizer))
    if adapter is not None:
        merge_lora(model, adapter)
    return model.to(dtype).eval().requires_grad_(False)


def _read_llm_tensors(directory: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        state.update(load_safetensors(path))
    return state


def _load_strict(model: PreTrainedModel, state: dict[str, torch.Tensor], where: str) -> None:
    expected = model.state_dict()
    tied = model.config.tie_word_embeddings
    optional = {"lm_head.weight"} if tied else set()
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise TinyAudioError(
            f"{where} do not match the LLM config: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise TinyAudioError(
                f"tensor shape mismatch in {where}: {name} is {list(tensor.shape)}, "
                f"config says {list(expected[name].shape)}"
            )
    model.load_state_dict(state, strict=False)
    if tied:
        model.tie_weights()


def _resize_to_tokenizer(model: PreTrainedModel, rows: int) -> None:
    """Shrink (Qwen) or grow the vocabulary to the tokenizer's size.

    Upstream grows with mean_resizing=True, which *samples* new rows; we put new rows at the
    mean (that sampler's expectation) so a load is deterministic. Qwen only ever shrinks.
    """
    old = model.get_input_embeddings().weight.shape[0]
    if rows == old:
        return
    model.resize_token_embeddings(rows, mean_resizing=False)
    if rows > old:
        with torch.no_grad():
            table = model.get_input_embeddings().weight
            table[old:] = table[:old].mean(dim=0)


def merge_lora(model: PreTrainedModel, adapter: LoraAdapter) -> int:
    """W += scale · B @ A for every adapted Linear; returns how many were merged."""
    modules = dict(model.named_modules())
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in adapter.tensors.items():
        if ".lora_A." not in key and ".lora_B." not in key:
            raise TinyAudioError(f"adapter tensor '{key}' is not a LoRA A/B matrix")
        name, part = key.replace(".weight", "").rsplit(".", 1)
        name = name.removeprefix("base_model.model.")
        pairs.setdefault(name, {})[part] = tensor
    for name, parts in pairs.items():
        target = modules.get(name)
        if not isinstance(target, torch.nn.Linear) or set(parts) != {"lora_A", "lora_B"}:
            raise TinyAudioError(f"LoRA adapter targets '{name}', which is not a Linear layer")
        a, b = parts["lora_A"].float(), parts["lora_B"].float()
        if a.shape[1] != target.in_features or b.shape[0] != target.out_features:
            raise TinyAudioError(
                f"tensor shape mismatch: LoRA for {name} is {list(b.shape)}@{list(a.shape)}, "
                f"layer is [{target.out_features}, {target.in_features}]"
            )
        with torch.no_grad():
            target.weight += (adapter.scale * (b @ a)).to(target.weight.dtype)
    return len(pairs)
