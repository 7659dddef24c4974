"""An offline Qwen3-style tokenizer, for random-weight presets and the self-trained demo model.

Qwen3's vocabulary cannot be downloaded here, but a preset must behave like a real checkpoint:
same special tokens at the same ids (151643 <|endoftext|> … 151668 </think>), a chat template that
renders upstream's prompt, byte-level BPE. We train a small BPE and place Qwen3's specials at their
real ids; the ids in between are filler words that no merge can produce. The demo model instead
keeps the vocabulary compact (specials right after the BPE ids): a 151k-row embedding would be
most of its weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

# Qwen3's added tokens, in id order from 151643; True = special (skipped when decoding).
QWEN3_FIRST_SPECIAL_ID = 151643
QWEN3_SPECIALS = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False),
    ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
]  # fmt: skip
# Qwen2/3 pre-tokenizer split pattern (public in every Qwen tokenizer.json).
_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Our own template: the subset of Qwen3's that tiny-audio uses (system, user, generation prompt
# with enable_thinking=False), rendering the same text.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
# Enough text for the prompt words to become single tokens, as they are in Qwen3.
_CORPUS = [
    "user\n Transcribe the speech to text\n\n",
    "system\nYou are a helpful assistant.\n\n",
    "assistant\n\n",
    "the quick brown fox jumps over the lazy dog and so my fellow americans ask not",
    "zero one two three four five six seven eight nine ten",
]


def build_preset_tokenizer(
    directory: Path, vocab_size: int = 1000, corpus: list[str] | None = None, qwen_ids: bool = True
) -> None:
    """Write tokenizer.json, tokenizer_config.json and chat_template.jinja into ``directory``.

    ``corpus`` adds training text to the prompt words; ``qwen_ids=False`` numbers the specials
    right after the BPE vocabulary instead of at Qwen3's ids.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 20 + (corpus or []), trainer=trainer)

    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    first_special = QWEN3_FIRST_SPECIAL_ID if qwen_ids else len(vocab)
    for i in range(len(vocab), first_special):
        vocab[f"\u0120w{i}"] = i  # " w123": readable, and no merge produces it
    spec["added_tokens"] = [
        {
            "id": first_special + i,
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": special,
        }
        for i, (content, special) in enumerate(QWEN3_SPECIALS)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "backend": "tokenizers",
        "add_prefix_space": False,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "model_max_length": 131072,
        "extra_special_tokens": [c for c, special in QWEN3_SPECIALS[1:14] if special],
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
