"""The decoder loop: one preallocated KV cache that onnxruntime reads and writes in place.

The decoder graph (export/decoder_graph.py) attends with GroupQueryAttention, whose past and
present are the same [1, kv_heads, capacity, head_dim] buffer per layer: with IO binding both
point at it, so a step reads the cache where it lies and writes only its new rows: no per-step
cache copies and no allocations (tests check that the bound pointers never move).

With a GPU provider (CUDA, TensorRT) the cache, the step's input and the logits are OrtValues on
the device (``DeviceKVCache``): a token copies its embedding in and its logits out, never the
cache. The same code runs with CPU OrtValues, which is how it is tested without a GPU.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnxruntime as ort

from tinyaudio.errors import TinyAudioError


class KVCache:
    """One [1, kv_heads, capacity, head_dim] float32 buffer per layer and per K/V."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity: int) -> None:
        shape = (1, kv_heads, capacity, head_dim)
        # A tuple, never replaced: the decoder's IO binding keeps pointers into these arrays.
        self.buffers = tuple(np.zeros(shape, dtype=np.float32) for _ in range(2 * layers))
        self.capacity = capacity
        self.length = 0

    def append(self, states: tuple[np.ndarray, ...]) -> None:
        """Copy precomputed positions (one [1, kv, n, hd] array per buffer) to the end."""
        count = states[0].shape[2]
        if self.length + count > self.capacity:
            needed = self.length + count
            raise TinyAudioError(f"{needed} positions do not fit a {self.capacity}-position cache")
        for buffer, state in zip(self.buffers, states, strict=True):
            buffer[:, :, self.length : self.length + count] = state
        self.length += count


def _device_array(shape: tuple[int, ...], device: str) -> ort.OrtValue:
    """An uninitialised float32 OrtValue in ``device``'s memory (never a view of a host array)."""
    return ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, 0)


class DeviceKVCache(KVCache):
    """The same cache as OrtValues on ``device`` ("cuda", or "cpu" to test the path)."""

    def __init__(
        self, layers: int, kv_heads: int, head_dim: int, capacity: int, device: str
    ) -> None:
        self.shape = (1, kv_heads, capacity, head_dim)
        self.buffers = tuple(_device_array(self.shape, device) for _ in range(2 * layers))
        self.capacity = capacity
        self.length = 0

    def append(self, states: tuple[np.ndarray, ...]) -> None:
        """Host states → the device, once per request (the prompt prefix's): OrtValues are
        written whole, so each buffer goes up at full size with the states at its start."""
        count = states[0].shape[2]
        if self.length or count > self.capacity:
            raise TinyAudioError(f"{count} prefix positions do not fit a fresh device cache")
        staging = np.zeros(self.shape, dtype=np.float32)
        for buffer, state in zip(self.buffers, states, strict=True):
            staging[:, :, :count] = state
            buffer.update_inplace(staging)
        self.length = count


class Decoder:
    def __init__(
        self, session: ort.InferenceSession, dims: dict[str, Any], device: str | None = None
    ) -> None:
        """``device``: keep the cache and logits in OrtValues there ("cuda"; "cpu" runs that
        path on the CPU); None: numpy buffers bound in place, the fastest on a CPU."""
        self.session = session
        self.device = device
        self.layers = dims["num_layers"]
        self.kv_heads = dims["num_kv_heads"]
        self.head_dim = dims["head_dim"]
        self.vocab_size = dims["vocab_size"]
        self.max_positions = dims["max_positions"]
        self.past_names = [i.name for i in session.get_inputs() if i.name.startswith("past_")]
        self.present_names = [
            o.name for o in session.get_outputs() if o.name.startswith("present_")
        ]
        if len(self.past_names) != 2 * self.layers or len(self.present_names) != 2 * self.layers:
            raise TinyAudioError(
                f"decoder graph has {len(self.past_names)} cache inputs and "
                f"{len(self.present_names)} cache outputs; the manifest says {self.layers} layers"
            )
        self.logits = np.zeros((1, self.vocab_size), dtype=np.float32)
        self.seqlens = np.zeros(1, dtype=np.int32)  # total length − 1, as GroupQueryAttention wants
        self.total = np.zeros((), dtype=np.int32)
        self.binding = session.io_binding()  # logits and lengths: bound once, updated in place
        if device is None:
            self.binding.bind_output("logits", "cpu", 0, np.float32, list(self.logits.shape),
                                     self.logits.ctypes.data)  # fmt: skip
        else:
            self.device_logits = _device_array(self.logits.shape, device)
            self.binding.bind_ortvalue_output("logits", self.device_logits)
        self.device_step: ort.OrtValue | None = None  # a decode step's input, on the device
        # The last position's query at the alignment layers (runtime/alignment.py), host memory
        # in either mode: a few hundred floats per token.
        self.queries = {
            int(o.name.rsplit(".", 1)[1]): np.zeros(o.shape, dtype=np.float32)
            for o in session.get_outputs()
            if o.name.startswith("alignment_query.")
        }
        for layer, query in self.queries.items():
            self.binding.bind_output(f"alignment_query.{layer}", "cpu", 0, np.float32,
                                     list(query.shape), query.ctypes.data)  # fmt: skip
        for name, array in (("seqlens_k", self.seqlens), ("total_sequence_length", self.total)):
            self.binding.bind_input(name, "cpu", 0, np.int32, list(array.shape),
                                    array.ctypes.data)  # fmt: skip
        self._bound: weakref.ref[KVCache] | None = None  # the cache the binding points into

    def _bind_cache(self, cache: KVCache) -> None:
        """Point past and present at ``cache``'s buffers, once per cache: 56 bindings cost
        ~1.5 ms, 6 % of a Qwen3-0.6B step, if they are made every token."""
        if self._bound is not None and self._bound() is cache:
            return
        for past, present, buffer in zip(self.past_names, self.present_names, cache.buffers,
                                         strict=True):  # fmt: skip
            if self.device is None:
                shape = list(buffer.shape)
                self.binding.bind_input(past, "cpu", 0, np.float32, shape, buffer.ctypes.data)
                self.binding.bind_output(present, "cpu", 0, np.float32, shape, buffer.ctypes.data)
            else:
                self.binding.bind_ortvalue_input(past, buffer)
                self.binding.bind_ortvalue_output(present, buffer)
        self._bound = weakref.ref(cache)

    def new_cache(self, capacity: int) -> KVCache:
        if capacity > self.max_positions:
            raise TinyAudioError(
                f"prompt and output need {capacity} positions; this decoder holds at most "
                f"{self.max_positions}"
            )
        if self.device is None:
            return KVCache(self.layers, self.kv_heads, self.head_dim, capacity)
        return DeviceKVCache(self.layers, self.kv_heads, self.head_dim, capacity, self.device)

    def host_states(self, cache: KVCache) -> tuple[np.ndarray, ...]:
        """The filled positions of ``cache`` as host arrays (to reuse a prompt prefix)."""
        if self.device is None:
            return tuple(buffer[:, :, : cache.length] for buffer in cache.buffers)
        return tuple(buffer.numpy()[:, :, : cache.length] for buffer in cache.buffers)

    def keys(self, cache: KVCache, layer: int) -> np.ndarray:
        """Layer ``layer``'s cached keys [kv_heads, filled positions, head_dim], on the host."""
        buffer = cache.buffers[2 * layer]
        host = buffer if self.device is None else buffer.numpy()
        return host[0, :, : cache.length]

    def forward(self, embeds: np.ndarray, cache: KVCache) -> np.ndarray:
        """Run S new positions [1, S, H]; returns the last position's logits (a reused buffer)."""
        embeds = np.ascontiguousarray(embeds, dtype=np.float32)
        start, new = cache.length, embeds.shape[1]
        if start + new > cache.capacity:
            raise TinyAudioError(
                f"prompt and output need {start + new} positions, the cache holds {cache.capacity}"
            )
        self.total[()] = start + new
        self.seqlens[0] = start + new - 1
        self._bind_cache(cache)
        if self.device is None:
            self.binding.bind_cpu_input("inputs_embeds", embeds)
        else:  # a decode step reuses one device buffer; a prefill gets its own
            if new == 1 and self.device_step is not None:
                target = self.device_step
            else:
                target = _device_array(embeds.shape, self.device)
                self.device_step = target if new == 1 else self.device_step
            target.update_inplace(embeds)
            self.binding.bind_ortvalue_input("inputs_embeds", target)
        self.session.run_with_iobinding(self.binding)
        cache.length = start + new
        if self.device is not None:
            return self.device_logits.numpy()  # the only copy out per token
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
