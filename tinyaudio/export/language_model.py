"""The decoder LLM and its tokenizer, assembled the way upstream's ASRModel does.

Stock weights come from ``text_model_id``; a fine-tuned decoder (``language_model.*`` in
model.safetensors) replaces them; a PEFT LoRA adapter is merged in (W += alpha/r · B @ A).
The tokenizer is the LLM's, plus the `<audio>` special token, and the embeddings are resized to
the tokenizer's length (Qwen3: 151936 → 151670 rows, so ids ≥ 151670 can never be produced).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.initialization import no_init_weights

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.checkpoint import LoraAdapter, TensorFiles, check_tensors, weight_files

AUDIO_TOKEN = "<audio>"
SUPPORTED_FAMILIES = ("qwen3", "qwen2", "llama")
EMBEDDINGS = "model.embed_tokens.weight"
TABLES = (EMBEDDINGS, "lm_head.weight")  # one row per vocabulary entry


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


def read_llm_config(directory: Path) -> PretrainedConfig:
    config = AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    if config.model_type not in SUPPORTED_FAMILIES:
        raise TinyAudioError(
            f"LLM {directory} is a '{config.model_type}' model; supported: "
            f"{', '.join(SUPPORTED_FAMILIES)}"
        )
    return config


def load_language_model(
    directory: Path,
    tokenizer,
    fine_tuned: TensorFiles,
    adapter: LoraAdapter | None,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """The LLM with the checkpoint's fine-tuned weights (else the stock ones) and its LoRA
    merged, its vocabulary at the tokenizer's size (Qwen3: 151936 → 151670 rows).

    Tensors are copied in one at a time and the model is built at the tokenizer's vocabulary
    from the start, so a bf16 checkpoint loads at the FP32 model's size and no larger."""
    config = read_llm_config(directory)
    if len(fine_tuned):
        source, where = fine_tuned, "language_model.* in model.safetensors"
    else:
        source, where = TensorFiles(weight_files(directory)), f"LLM weights in {directory}"
    config.vocab_size = source.shapes[EMBEDDINGS][0] if EMBEDDINGS in source else config.vocab_size
    with torch.device("meta"):  # shapes only: what the source must match
        expected = AutoModelForCausalLM.from_config(config).state_dict()
    optional = frozenset({"lm_head.weight"} if config.tie_word_embeddings else ())
    check_tensors({k: list(v.shape) for k, v in expected.items()}, source, where, optional)
    stored_rows, config.vocab_size = config.vocab_size, len(tokenizer)
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.tie_weights()  # from_config leaves a tied head as a separate, empty matrix
    with torch.no_grad():
        for name, target in model.state_dict().items():
            if name not in source:  # a tied lm_head: the embedding table itself
                continue
            if name in TABLES:
                _copy_rows(target, source.get(name), stored_rows)
            else:
                target.copy_(source.get(name))
    if adapter is not None:
        merge_lora(model, adapter)
    return model.to(dtype).eval().requires_grad_(False)


def _copy_rows(target: torch.Tensor, stored: torch.Tensor, stored_rows: int) -> None:
    """A vocabulary table into one with the tokenizer's row count. Upstream grows with
    mean_resizing=True, which *samples* new rows; new rows here get the mean (that sampler's
    expectation) so a load is deterministic. Qwen only ever shrinks."""
    rows = min(target.shape[0], stored_rows)
    target[:rows] = stored[:rows]
    if target.shape[0] > rows:
        target[rows:] = stored.float().mean(dim=0)


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
