"""Child: the upstream-equivalent PyTorch pipeline (FP32, every clip padded to 30 s), optionally
with the LLM's linear layers in bitsandbytes 4-bit NF4 (the lightweighting NOTA's system used).

Timing goes through the reference transcriber and transformers' ``generate``, as upstream runs;
``min_new_tokens`` holds every clip to the same transcript length.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import GenerationConfig

from tinyaudio.bench.clips import speech_clip, transcript_tokens
from tinyaudio.bench.records import child_main, clip_records, peak_rss_mb
from tinyaudio.errors import TinyAudioError
from tinyaudio.export.loader import load_model
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.runtime.audio import load_audio


class FirstTokenClock:
    """A generate() streamer that notes when the first new token arrives."""

    def __init__(self) -> None:
        self.first: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if value.ndim == 1 and self.first is None:  # the prompt arrives first, as [1, L]
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def to_bnb_4bit(language_model: torch.nn.Module) -> int:
    """Swap every linear layer but the (tied) LM head for bitsandbytes NF4; returns how many."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise TinyAudioError("bitsandbytes is not installed") from None
    head = language_model.get_output_embeddings()
    swapped = 0
    for parent in list(language_model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, torch.nn.Linear) or child is head:
                continue
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=torch.float32,
                quant_type="nf4",
            )
            layer.weight = bnb.nn.Params4bit(
                child.weight.data, requires_grad=False, quant_type="nf4"
            )
            if child.bias is not None:
                layer.bias = child.bias
            setattr(parent, name, layer.to("cpu"))  # .to() quantizes
            swapped += 1
    return swapped


def run_clip(transcriber: ReferenceTranscriber, audio, new_tokens: int) -> tuple[float, ...]:
    started = time.perf_counter()
    features, mel_length = transcriber.features(audio, padded=True)
    rows = transcriber.audio_embeddings(features, mel_length)
    encoded = time.perf_counter()
    ids, embeds = transcriber.prompt_embeddings(rows)
    config = transcriber.generation_config.to_dict()
    config.update(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    clock = FirstTokenClock()
    with torch.inference_mode():
        output = transcriber.model.language_model.generate(
            input_ids=ids,
            inputs_embeds=embeds,
            attention_mask=torch.ones_like(ids),
            generation_config=GenerationConfig(**config),
            streamer=clock,
        )
    done = time.perf_counter()
    count = output.shape[1] - ids.shape[1]
    return encoded - started, clock.first - encoded, done - clock.first, ids.shape[1], count


def measure(job: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(job["threads"])
    started = time.perf_counter()
    transcriber = ReferenceTranscriber(load_model(job["model"]))
    result: dict[str, Any] = {}
    if job.get("bnb_4bit"):
        result["bnb_layers"] = to_bnb_4bit(transcriber.model.language_model)
    result["load_s"] = time.perf_counter() - started
    result["rss_loaded_mb"] = peak_rss_mb()
    speech = load_audio(job["audio"])
    run_clip(transcriber, speech_clip(speech, 1.0), 4)  # warm-up
    result["clips"] = clip_records(
        job["seconds"],
        job["repeats"],
        lambda s: run_clip(transcriber, speech_clip(speech, s), transcript_tokens(s)),
    )
    return result


if __name__ == "__main__":
    child_main(measure)
