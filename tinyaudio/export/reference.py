"""The PyTorch reference transcriber: upstream tiny-audio's transcription, step for step.

It is the oracle every ONNX parity test compares against (reference §11): Whisper log-mel padded to
30 s, encoder on all 3000 frames without a mask, projector, the first N rows spliced into the chat
prompt at the `<audio>` slots, transformers' greedy generate with upstream's generation config,
then upstream's post-processing. ``padded=False`` is the unpadded mode (upstream's MLX/Swift port):
the same features cut to the real frames, so the encoder does only the clip's work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import GenerationConfig

from tinyaudio.export.loader import TinyAudioModel
from tinyaudio.runtime.lengths import SAMPLE_RATE
from tinyaudio.runtime.text import finish_transcript


@dataclass
class ReferenceResult:
    text: str
    token_ids: list[int]  # generated ids, stop token included when one was produced
    prompt_ids: list[int]
    num_audio_tokens: int
    mel_frames: int  # frames the encoder saw (3000 when padded)


class ReferenceTranscriber:
    def __init__(self, model: TinyAudioModel) -> None:
        self.model = model
        self.generation_config = GenerationConfig(
            max_new_tokens=model.max_new_tokens,
            min_new_tokens=0,
            num_beams=1,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=1.0,
            length_penalty=1.0,
            no_repeat_ngram_size=0,
            use_cache=True,
            eos_token_id=model.eos_token_ids,
            pad_token_id=model.tokenizer.pad_token_id,
        )

    def features(self, audio: np.ndarray, padded: bool = True) -> tuple[torch.Tensor, int]:
        """Log-mel [1, n_mels, T] and the real mel length (the attention mask's sum)."""
        extracted = self.model.feature_extractor(
            np.asarray(audio, dtype=np.float32),
            sampling_rate=SAMPLE_RATE,
            return_attention_mask=True,
            return_tensors="pt",
        )
        features = extracted["input_features"]
        mel_length = int(extracted["attention_mask"].sum())
        if not padded:
            features = features[:, :, :mel_length]
        return features.to(self.model.dtype), mel_length

    def prompt_ids(self, num_audio_tokens: int, instruction: str | None = None) -> torch.Tensor:
        messages = []
        if self.model.system_prompt:
            messages.append({"role": "system", "content": self.model.system_prompt})
        content = self.model.prompt.user_content(num_audio_tokens, instruction)
        messages.append({"role": "user", "content": content})
        encoded = self.model.tokenizer.apply_chat_template(
            messages,
            tokenize=True,
            add_generation_prompt=True,
            return_tensors="pt",
            enable_thinking=False,
        )
        return encoded["input_ids"]

    @torch.no_grad()
    def audio_embeddings(self, features: torch.Tensor, mel_length: int) -> torch.Tensor:
        """Projector rows for the real audio: the first N, zero-padded if N exceeds the rows."""
        return self.rows_from_states(self.model.encoder(features), mel_length)

    @torch.no_grad()
    def rows_from_states(self, hidden: torch.Tensor, mel_length: int) -> torch.Tensor:
        """The projector rows of encoder states ``hidden`` (the encoder's half done already)."""
        projected = self.model.projector(hidden)[0]
        count = self.model.projector.output_length(self.model.encoder_frames(mel_length))
        if count > projected.shape[0]:
            projected = torch.nn.functional.pad(projected, (0, 0, 0, count - projected.shape[0]))
        return projected[:count]

    @torch.no_grad()
    def transcribe(
        self,
        audio: np.ndarray,
        padded: bool = True,
        instruction: str | None = None,
        max_new_tokens: int | None = None,
    ) -> ReferenceResult:
        """Transcribe 16 kHz mono float audio (upstream truncates anything past 30 s)."""
        features, mel_length = self.features(audio, padded)
        audio_rows = self.audio_embeddings(features, mel_length)
        return self.generate(audio_rows, features.shape[-1], instruction, max_new_tokens)

    @torch.no_grad()
    def prompt_embeddings(
        self, audio_rows: torch.Tensor, instruction: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt ids [1, L] and their embeddings with the audio rows at the `<audio>` slots."""
        ids = self.prompt_ids(audio_rows.shape[0], instruction)
        embeds = self.model.language_model.get_input_embeddings()(ids)
        slots = (ids == self.model.audio_token_id).unsqueeze(-1)
        return ids, embeds.masked_scatter(slots, audio_rows.to(embeds.dtype))

    @torch.no_grad()
    def generate(
        self,
        audio_rows: torch.Tensor,
        mel_frames: int,
        instruction: str | None = None,
        max_new_tokens: int | None = None,
    ) -> ReferenceResult:
        """Splice projector rows into the prompt and decode greedily (the LLM half)."""
        ids, embeds = self.prompt_embeddings(audio_rows, instruction)
        lm = self.model.language_model
        config = self.generation_config
        if max_new_tokens is not None:
            config = GenerationConfig(**{**config.to_dict(), "max_new_tokens": max_new_tokens})
        output = lm.generate(
            input_ids=ids,
            inputs_embeds=embeds,
            attention_mask=torch.ones_like(ids),
            generation_config=config,
        )
        generated = output[0, ids.shape[1] :].tolist()
        stops = set(self.model.eos_token_ids)
        # generate pads finished rows with pad_token_id (= <|endoftext|>, a stop id): cut at the
        # first stop so the ids are exactly what a step-by-step greedy loop produces.
        for i, token in enumerate(generated):
            if token in stops:
                generated = generated[: i + 1]
                break
        text_ids = [t for t in generated if t not in stops]
        decoded = self.model.tokenizer.decode(text_ids, skip_special_tokens=True)
        return ReferenceResult(
            text=finish_transcript(decoded),
            token_ids=generated,
            prompt_ids=ids[0].tolist(),
            num_audio_tokens=int(audio_rows.shape[0]),
            mel_frames=int(mel_frames),
        )
