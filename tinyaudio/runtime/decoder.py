"""The decoder loop: a preallocated KV cache that onnxruntime writes into in place.

The decoder graph returns only the new positions' keys/values (see export/graphs.py). With IO
binding, ``past`` is bound to ``cache[:, :P]`` and the outputs to ``cache[:, P:P+S]`` of the same
buffer, so a step reads the cache where it lies and appends to it where it lies: no per-step cache
copies and no allocations (tests check that the bound pointers never move).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnxruntime as ort

from tinyaudio.errors import TinyAudioError


class KVCache:
    """One [1, capacity, kv_heads, head_dim] float32 buffer per layer and per K/V."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity: int) -> None:
        shape = (1, capacity, kv_heads, head_dim)
        self.buffers = [np.zeros(shape, dtype=np.float32) for _ in range(2 * layers)]
        self.capacity = capacity
        self.length = 0

    def append(self, states: list[np.ndarray]) -> None:
        """Copy precomputed positions (one [1, n, kv, hd] array per buffer) to the end."""
        count = states[0].shape[1]
        for buffer, state in zip(self.buffers, states, strict=True):
            buffer[:, self.length : self.length + count] = state
        self.length += count


class Decoder:
    def __init__(self, session: ort.InferenceSession, dims: dict[str, Any]) -> None:
        self.session = session
        self.layers = dims["num_layers"]
        self.kv_heads = dims["num_kv_heads"]
        self.head_dim = dims["head_dim"]
        self.vocab_size = dims["vocab_size"]
        self.past_names = [i.name for i in session.get_inputs()][1:]
        self.new_names = [o.name for o in session.get_outputs()][1:]
        if len(self.past_names) != 2 * self.layers or len(self.new_names) != 2 * self.layers:
            raise TinyAudioError(
                f"decoder graph has {len(self.past_names)} cache inputs, the manifest says "
                f"{self.layers} layers"
            )
        self.logits = np.zeros((1, self.vocab_size), dtype=np.float32)
        self.binding = session.io_binding()

    def new_cache(self, capacity: int) -> KVCache:
        return KVCache(self.layers, self.kv_heads, self.head_dim, capacity)

    def forward(self, embeds: np.ndarray, cache: KVCache) -> np.ndarray:
        """Run S new positions [1, S, H]; returns the last position's logits (a reused buffer)."""
        embeds = np.ascontiguousarray(embeds, dtype=np.float32)
        start, new = cache.length, embeds.shape[1]
        if start + new > cache.capacity:
            raise TinyAudioError(
                f"prompt and output need {start + new} positions, the cache holds {cache.capacity}"
            )
        binding = self.binding
        binding.bind_cpu_input("inputs_embeds", embeds)
        past_shape = [1, start, self.kv_heads, self.head_dim]
        new_shape = [1, new, self.kv_heads, self.head_dim]
        for past, out, buffer in zip(self.past_names, self.new_names, cache.buffers, strict=True):
            binding.bind_input(past, "cpu", 0, np.float32, past_shape, buffer.ctypes.data)
            append_at = buffer[:, start:].ctypes.data
            binding.bind_output(out, "cpu", 0, np.float32, new_shape, append_at)
        binding.bind_output("logits", "cpu", 0, np.float32, list(self.logits.shape),
                            self.logits.ctypes.data)  # fmt: skip
        self.session.run_with_iobinding(binding)
        cache.length = start + new
        return self.logits

    def generate(
        self,
        prompt: np.ndarray,
        embed: Callable[[list[int]], np.ndarray],
        cache: KVCache,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Greedy decoding: yields (token, logits) forever; the caller decides when to stop.

        ``prompt`` [1, L, H] is what is not in ``cache`` yet. The logits array is reused.
        """
        logits = self.forward(prompt, cache)
        while True:
            token = int(np.argmax(logits[0]))
            yield token, logits
            if cache.length >= cache.capacity:
                return
            logits = self.forward(embed([token])[None], cache)
