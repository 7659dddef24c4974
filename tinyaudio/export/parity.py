"""Export-time parity: every FP32 graph against PyTorch, on inputs in the real format.

Probe audio goes through transformers' feature extractor (the reference front end) in both modes;
the encoder and projector graphs are compared with the PyTorch modules, the decoder with
PyTorch's full-sequence forward (no cache) over a prefill and greedy steps that continue past any
stop token. The figures go into the manifest; an export that misses them fails.

It runs stage by stage, as the exporter writes each graph: PyTorch's outputs are taken while
that module is loaded, then the module is freed and the graph's session compared with them, so
PyTorch and onnxruntime never hold the same weights at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.encoder import AudioEncoder
from tinyaudio.export.loader import TinyAudioModel
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.quantize.probes import probe_signals
from tinyaudio.runtime.engine import Engine

STEPS = 10  # greedy steps after the prefill
LOGITS_TOLERANCE = 1e-4  # max abs difference of decoder logits
STATES_TOLERANCE = 1e-3  # max abs difference relative to the largest reference value
MODES = {"exact": True, "fast": False}  # parity mode → padded to 30 s


def _compare(reference: torch.Tensor, onnx: np.ndarray) -> dict[str, float]:
    reference = reference.float().numpy()
    if reference.shape != onnx.shape:
        raise TinyAudioError(f"parity: ONNX output {onnx.shape} vs PyTorch {reference.shape}")
    diff = float(np.abs(reference - onnx).max(initial=0.0))
    scale = float(np.abs(reference).max(initial=0.0)) or 1.0
    return {"max_abs": diff, "max_rel": diff / scale}


@dataclass
class DecoderReference:
    """PyTorch's side of the decoder comparison: the prompt and its greedy continuation."""

    ids: torch.Tensor  # [1, L] prompt ids
    embeds: torch.Tensor  # [1, L, H] prompt embeddings, audio rows spliced in
    tokens: list[int]  # greedy token after the prefill and after each step
    logits: list[torch.Tensor]  # [1, vocab] at each of those positions


class Parity:
    """Collects the report graph by graph; ``finish`` fails the export if any graph missed."""

    def __init__(self, model: TinyAudioModel) -> None:
        self.model = model
        self.reference = ReferenceTranscriber(model)
        audio = probe_signals()["voiced"]
        self.inputs = {
            mode: self.reference.features(audio, padded) for mode, padded in MODES.items()
        }
        self.report: dict = {"probe": "voiced", "audio_seconds": len(audio) / 16000}

    @torch.no_grad()
    def encoder_states(self, encoder: AudioEncoder) -> dict[str, torch.Tensor]:
        return {mode: encoder(features) for mode, (features, _) in self.inputs.items()}

    def check_encoder(self, states: dict[str, torch.Tensor], engine: Engine) -> None:
        for mode, (features, _) in self.inputs.items():
            self.report[f"encoder_{mode}"] = _compare(states[mode], engine.encode(features.numpy()))

    @torch.no_grad()
    def audio_rows(self, states: torch.Tensor) -> torch.Tensor:
        """The projector's rows for the fast mode's states, as the reference cuts them."""
        return self.reference.rows_from_states(states, self.inputs["fast"][1])

    def check_projector(self, states: torch.Tensor, engine: Engine) -> None:
        with torch.no_grad():
            expected = self.model.projector(states)
        self.report["projector"] = _compare(expected, engine.project(states.numpy()))

    @torch.no_grad()
    def decoder_reference(self, rows: torch.Tensor) -> DecoderReference:
        """Greedy steps with the LLM that is loaded now (``model.holding("language_model")``)."""
        lm = self.model.language_model
        ids, embeds = self.reference.prompt_embeddings(rows)
        prompt, tokens, logits = embeds, [], []
        for step in range(STEPS + 1):
            logits.append(lm(inputs_embeds=embeds).logits[:, -1])
            tokens.append(int(logits[-1].argmax()))
            if step < STEPS:
                next_embed = lm.get_input_embeddings()(torch.tensor([[tokens[-1]]]))
                embeds = torch.cat([embeds, next_embed], dim=1)
        return DecoderReference(ids, prompt, tokens, logits)

    def check_decoder(self, expected: DecoderReference, rows: torch.Tensor, engine: Engine) -> None:
        onnx_prompt = engine.prompt_embeds(rows.numpy())
        prompt_diff = _compare(expected.embeds, onnx_prompt)["max_abs"]
        if prompt_diff > 0:
            raise TinyAudioError(
                f"parity: manifest prompt differs from the chat template ({prompt_diff})"
            )
        cache = engine.decoder.new_cache(onnx_prompt.shape[1] + STEPS + 1)
        onnx_logits = engine.decoder.forward(onnx_prompt, cache)
        diffs, identical = [], True
        for step, (token, torch_logits) in enumerate(zip(expected.tokens, expected.logits,
                                                         strict=True)):  # fmt: skip
            diffs.append(_compare(torch_logits, onnx_logits)["max_abs"])
            identical &= token == int(np.argmax(onnx_logits))
            if step < STEPS:  # teacher-forced along PyTorch's tokens
                onnx_logits = engine.decoder.forward(engine.embeddings([token])[None], cache)
        self.report["decoder"] = {
            "prompt_tokens": int(expected.ids.shape[1]),
            "audio_tokens": int(rows.shape[0]),
            "steps": STEPS,
            "prefill_logits_max_abs": diffs[0],
            "logits_max_abs": max(diffs),
            "tokens_identical": identical,
            "tokens": expected.tokens,
        }

    def finish(self) -> dict:
        report = self.report
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
