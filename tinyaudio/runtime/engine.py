"""A bundle's three graphs wired together: log-mel → encoder → projector → prompt → tokens.

This is the numeric core shared by the quantizer's accuracy gates, export-time parity and the
transcriber; it knows nothing about files, text or segmentation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tinyaudio.bundle import read_manifest, verify_bundle
from tinyaudio.runtime.alignment import AttentionRecorder
from tinyaudio.runtime.decoder import Decoder
from tinyaudio.runtime.embeddings import TokenEmbeddings
from tinyaudio.runtime.features import log_mel
from tinyaudio.runtime.lengths import audio_tokens, conv_output_length
from tinyaudio.runtime.sessions import (
    ENCODER_RUN,
    cache_device,
    check_threads,
    create_session,
    resolve_provider,
)

GRAPHS = ("encoder", "projector", "decoder")
AUDIO_GRAPHS = ("encoder", "projector")


@dataclass
class Engine:
    directory: Path
    manifest: dict[str, Any]
    encoder: Any  # onnxruntime.InferenceSession (None when not loaded: see ``load``)
    projector: Any
    decoder: Decoder | None
    embeddings: TokenEmbeddings | None
    # The last prompt prefix's KV states: the prefix is the same for every clip, computed once.
    _prefix: tuple[tuple[int, ...], tuple[np.ndarray, ...]] = field(default=((), ()), repr=False)

    @classmethod
    def from_bundle(
        cls,
        directory: Path,
        threads: int | None = None,
        provider: str | None = None,
        verify: bool = True,
    ) -> Engine:
        directory = Path(directory)
        check_threads(threads)  # before minutes of checksums on a large bundle
        manifest = read_manifest(directory)
        if verify:
            verify_bundle(directory, manifest)
        return cls.load(directory, manifest, threads, provider)

    @classmethod
    def load(
        cls,
        directory: Path,
        manifest: dict[str, Any],
        threads: int | None = None,
        provider: str | None = None,
        graphs: tuple[str, ...] = GRAPHS,
        prepack: bool = True,
    ) -> Engine:
        """The graphs in ``directory`` as ``manifest`` describes them (for a bundle still being
        written, whose manifest.json does not exist yet). Only ``graphs`` are opened: export and
        quantization hold one FP32 stage at a time, unpacked (see ``create_session``), so a
        large model fits in less memory."""
        providers = resolve_provider(provider)

        def session(name: str):
            if name not in graphs:
                return None
            path = directory / manifest["graphs"][name]["file"]
            return create_session(path, threads, providers, prepack, arena=name == "encoder")

        decoder = session("decoder")
        return cls(
            directory=directory,
            manifest=manifest,
            encoder=session("encoder"),
            projector=session("projector"),
            decoder=Decoder(decoder, manifest["dims"], cache_device(decoder)) if decoder else None,
            embeddings=TokenEmbeddings(directory, manifest["embeddings"]) if decoder else None,
        )

    @property
    def stop_ids(self) -> list[int]:
        return self.manifest["prompt"]["stop_ids"]

    def features(self, audio: np.ndarray, padded: bool) -> tuple[np.ndarray, int]:
        return log_mel(audio, self.manifest["audio"]["n_mels"], padded)

    def num_audio_tokens(self, mel_length: int) -> int:
        audio = self.manifest["audio"]
        frames = conv_output_length(mel_length, audio["conv_layers"])
        projector = audio["projector"]
        return audio_tokens(
            projector["type"],
            frames,
            pool_stride=projector["pool_stride"],
            qformer_window=projector["qformer_window"],
            qformer_queries=projector["qformer_queries"],
        )

    def encode(self, features: np.ndarray) -> np.ndarray:
        return self.encoder.run(None, {"input_features": features}, ENCODER_RUN)[0]

    def project(self, encoder_states: np.ndarray) -> np.ndarray:
        return self.projector.run(None, {"encoder_states": encoder_states})[0]

    def audio_rows(self, features: np.ndarray, mel_length: int) -> np.ndarray:
        """[N, H] projector rows for the real audio (upstream: the first N, zero-padded)."""
        return self.audio_rows_from(self.encode(features), mel_length)

    def audio_rows_from(self, encoder_states: np.ndarray, mel_length: int) -> np.ndarray:
        projected = self.project(encoder_states)[0]
        count = self.num_audio_tokens(mel_length)
        if count > projected.shape[0]:
            projected = np.pad(projected, ((0, count - projected.shape[0]), (0, 0)))
        return projected[:count]

    def _prompt_ids(
        self, prefix: list[int] | None, suffix: list[int] | None
    ) -> tuple[list[int], list[int]]:
        """The ids around the audio rows: the manifest's default prompt unless given."""
        prompt = self.manifest["prompt"]
        prefix = prompt["prefix_ids"] if prefix is None else prefix
        return prefix, prompt["suffix_ids"] if suffix is None else suffix

    def prompt_embeds(
        self, rows: np.ndarray, prefix: list[int] | None = None, suffix: list[int] | None = None
    ) -> np.ndarray:
        """[1, L, H]: prefix tokens, the audio rows at the `<audio>` slots, suffix tokens."""
        prefix, suffix = self._prompt_ids(prefix, suffix)
        parts = [self.embeddings(prefix), rows, self.embeddings(suffix)]
        return np.concatenate(parts).astype(np.float32)[None]

    def prefix_states(self, prefix: list[int]) -> tuple[np.ndarray, ...]:
        """The KV states of ``prefix`` alone, computed on first use and kept while it is reused."""
        if self._prefix[0] != tuple(prefix):
            cache = self.decoder.new_cache(len(prefix))
            self.decoder.forward(self.embeddings(prefix)[None], cache)
            self._prefix = (tuple(prefix), self.decoder.host_states(cache))
        return self._prefix[1]

    def decode(
        self,
        rows: np.ndarray,
        max_new_tokens: int,
        prefix: list[int] | None = None,
        suffix: list[int] | None = None,
        stop: bool = True,
        recorder: AttentionRecorder | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Greedy (token, logits) pairs for the prompt around ``rows``: at most
        ``max_new_tokens``, ending with the stop id when one is produced (``stop=False``: always
        ``max_new_tokens``, as benchmarks need). Logits are reused.
        Only the audio rows and the suffix are prefilled: the prefix's states are reused.
        ``recorder`` keeps what word timing needs (runtime/alignment.py)."""
        prefix, suffix = self._prompt_ids(prefix, suffix)
        rest = np.concatenate([rows, self.embeddings(suffix)]).astype(np.float32)[None]
        cache = self.decoder.new_cache(len(prefix) + rest.shape[1] + max_new_tokens)
        if prefix:
            cache.append(self.prefix_states(prefix))
        steps = self.decoder.generate(rest, self.embeddings, cache)
        if recorder is not None:
            recorder.start(partial(self.decoder.keys, cache), len(prefix), len(rows))
        for count, (token, logits) in enumerate(steps, start=1):
            if recorder is not None:
                recorder.step(self.decoder.queries, cache.length - 1)
            yield token, logits
            if count >= max_new_tokens or (stop and token in self.stop_ids):
                return

    def greedy(self, rows: np.ndarray, max_new_tokens: int) -> list[int]:
        """Greedy token ids (the stop id included when reached)."""
        return [token for token, _ in self.decode(rows, max_new_tokens)]
