"""Export-time parity: every FP32 graph against PyTorch, on inputs in the real format.

Probe audio goes through transformers' feature extractor (the reference front end) in both modes;
the encoder and projector graphs are compared with the PyTorch modules, the decoder with
PyTorch's full-sequence forward (no cache) over a prefill and greedy steps that continue past any
stop token. The figures go into the manifest; an export that misses them fails.
"""

from __future__ import annotations

import numpy as np
import torch

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.loader import TinyAudioModel
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.quantize.probes import probe_signals
from tinyaudio.runtime.engine import Engine

STEPS = 10  # greedy steps after the prefill
LOGITS_TOLERANCE = 1e-4  # max abs difference of decoder logits
STATES_TOLERANCE = 1e-3  # max abs difference relative to the largest reference value


def _compare(reference: torch.Tensor, onnx: np.ndarray) -> dict[str, float]:
    reference = reference.float().numpy()
    if reference.shape != onnx.shape:
        raise TinyAudioError(f"parity: ONNX output {onnx.shape} vs PyTorch {reference.shape}")
    diff = float(np.abs(reference - onnx).max(initial=0.0))
    scale = float(np.abs(reference).max(initial=0.0)) or 1.0
    return {"max_abs": diff, "max_rel": diff / scale}


@torch.no_grad()
def check_parity(model: TinyAudioModel, engine: Engine) -> dict:
    reference = ReferenceTranscriber(model)
    audio = probe_signals()["voiced"]
    report: dict = {"probe": "voiced", "audio_seconds": len(audio) / 16000}
    for mode, padded in (("exact", True), ("fast", False)):
        features, mel_length = reference.features(audio, padded)
        states = model.encoder(features)
        report[f"encoder_{mode}"] = _compare(states, engine.encode(features.numpy()))
    report["projector"] = _compare(model.projector(states), engine.project(states.numpy()))
    rows = reference.audio_embeddings(features, mel_length)
    report["decoder"] = _decoder_parity(model, reference, engine, rows)
    failures = [
        name for name in ("encoder_exact", "encoder_fast", "projector")
        if report[name]["max_rel"] > STATES_TOLERANCE
    ]  # fmt: skip
    decoder = report["decoder"]
    if decoder["logits_max_abs"] > LOGITS_TOLERANCE or not decoder["tokens_identical"]:
        failures.append("decoder")
    report["passed"] = not failures
    if failures:
        raise TinyAudioError(f"export parity failed for {', '.join(failures)}: {report}")
    return report


def _decoder_parity(
    model: TinyAudioModel, reference: ReferenceTranscriber, engine: Engine, rows: torch.Tensor
) -> dict:
    ids, embeds = reference.prompt_embeddings(rows)
    onnx_prompt = engine.prompt_embeds(rows.numpy())
    prompt_diff = _compare(embeds, onnx_prompt)["max_abs"]
    if prompt_diff > 0:
        raise TinyAudioError(
            f"parity: manifest prompt differs from the chat template ({prompt_diff})"
        )
    table = model.language_model.get_input_embeddings()
    cache = engine.decoder.new_cache(embeds.shape[1] + STEPS + 1)
    onnx_logits = engine.decoder.forward(onnx_prompt, cache)
    worst, prefill, identical, tokens = 0.0, 0.0, True, []
    for step in range(STEPS + 1):
        torch_logits = model.language_model(inputs_embeds=embeds).logits[:, -1]
        diff = _compare(torch_logits, onnx_logits)["max_abs"]
        prefill = diff if step == 0 else prefill
        worst = max(worst, diff)
        token = int(torch_logits.argmax())
        identical &= token == int(np.argmax(onnx_logits))
        tokens.append(token)
        if step == STEPS:
            break
        embeds = torch.cat([embeds, table(torch.tensor([[token]]))], dim=1)
        onnx_logits = engine.decoder.forward(engine.embeddings([token])[None], cache)
    return {
        "prompt_tokens": int(ids.shape[1]),
        "audio_tokens": int(rows.shape[0]),
        "steps": STEPS,
        "prefill_logits_max_abs": prefill,
        "logits_max_abs": worst,
        "tokens_identical": identical,
        "tokens": tokens,
    }
