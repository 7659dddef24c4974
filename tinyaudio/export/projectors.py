"""The four tiny-audio projectors, built from the checkpoint's tensors rather than from a class.

Upstream changed the projector code several times while old weights stayed on the hub (biases,
`norm`, `norm_2`, hidden sizes). Building the graph from the keys and shapes that are present is
the only way to run every checkpoint as it was trained (reference §1.7, §11.5).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tinyaudio.errors import TinyAudioError
from tinyaudio.registry import check_projector_type
from tinyaudio.runtime.lengths import MOSA_CONV, audio_tokens


def frame_stack(x: torch.Tensor, k: int) -> torch.Tensor:
    """Concatenate k consecutive frames (frame-major), dropping the incomplete tail."""
    batch, frames, dim = x.shape
    out = (frames - k) // k + 1
    return x[:, : out * k].reshape(batch, out, dim * k)


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise TinyAudioError(f"projector tensor 'projector.{key}' is missing from the checkpoint")
    return tuple(state[key].shape)


def _expect(key: str, shape: tuple[int, ...], expected: tuple[int | None, ...], why: str) -> None:
    ok = len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected, strict=False)
    )
    if not ok:
        want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise TinyAudioError(
            f"tensor shape mismatch: projector.{key} is {list(shape)}, expected {want} ({why})"
        )


def _linear(state: dict, name: str, in_dim: int, why: str) -> nn.Linear:
    out_dim = _shape(state, f"{name}.weight")[0]
    _expect(f"{name}.weight", _shape(state, f"{name}.weight"), (None, in_dim), why)
    return nn.Linear(in_dim, out_dim, bias=f"{name}.bias" in state)


class SimpleAdapter(nn.Module):
    def __init__(self, fc1: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = fc1, nn.GELU(), fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _adapter(state: dict, name: str, in_dim: int, out_dim: int, why: str) -> SimpleAdapter:
    fc1 = _linear(state, f"{name}.fc1", in_dim, why)
    fc2 = _linear(state, f"{name}.fc2", fc1.out_features, f"{name}.fc1 output")
    _expect(f"{name}.fc2.weight", tuple(fc2.weight.shape), (out_dim, None), "LLM hidden size")
    return SimpleAdapter(fc1, fc2)


class MLPProjector(nn.Module):
    """Frame stack → linear_1 → [norm] → GELU → linear_2 → [norm_2]; every variant upstream had."""

    def __init__(self, state: dict, encoder_dim: int, llm_dim: int, pool_stride: int) -> None:
        super().__init__()
        self.k = pool_stride
        self.linear_1 = _linear(
            state, "linear_1", encoder_dim * pool_stride, "encoder_dim × projector_pool_stride"
        )
        hidden = self.linear_1.out_features
        self.norm = LlamaRMSNorm(hidden, eps=1e-6) if "norm.weight" in state else None
        self.act = nn.GELU()
        self.linear_2 = _linear(state, "linear_2", hidden, "linear_1 output size")
        _expect("linear_2.weight", tuple(self.linear_2.weight.shape), (llm_dim, None), "LLM size")
        self.norm_2 = LlamaRMSNorm(llm_dim, eps=1e-6) if "norm_2.weight" in state else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear_1(frame_stack(x, self.k))
        if self.norm is not None:
            x = self.norm(x)
        x = self.linear_2(self.act(x))
        return self.norm_2(x) if self.norm_2 is not None else x


class MOSAProjector(nn.Module):
    """Two stride-2 convs, then a softmax-weighted sum over all experts (dense by design)."""

    def __init__(self, state: dict, encoder_dim: int, llm_dim: int) -> None:
        super().__init__()
        padding, kernel, stride = MOSA_CONV
        conv = {"kernel_size": kernel, "stride": stride, "padding": padding}
        _expect("downsampler.0.weight", _shape(state, "downsampler.0.weight"),
                (encoder_dim, encoder_dim, kernel), "encoder_dim")  # fmt: skip
        _expect("downsampler.2.weight", _shape(state, "downsampler.2.weight"),
                (llm_dim, encoder_dim, kernel), "LLM size × encoder_dim")  # fmt: skip
        self.downsampler = nn.Sequential(
            nn.Conv1d(encoder_dim, encoder_dim, **conv),
            nn.GELU(),
            nn.Conv1d(encoder_dim, llm_dim, **conv),
            nn.GELU(),
        )
        router_1 = _linear(state, "router.0", llm_dim, "LLM size")
        router_2 = _linear(state, "router.2", router_1.out_features, "router.0 output")
        self.router = nn.Sequential(router_1, nn.ReLU(), router_2)
        self.experts = nn.ModuleList(
            _adapter(state, f"experts.{i}", llm_dim, llm_dim, "LLM size")
            for i in range(router_2.out_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsampler(x.transpose(1, 2)).transpose(1, 2)
        weights = torch.softmax(self.router(x), dim=-1)
        out = self.experts[0](x) * weights[..., 0:1]
        for i, expert in enumerate(self.experts[1:], start=1):
            out = out + expert(x) * weights[..., i : i + 1]
        return out


class MoEProjector(nn.Module):
    """Shared expert + top-k routed experts, as a dense masked sum (no data-dependent indexing).

    Every expert runs on every token and unselected ones get weight 0, so the graph exports to
    ONNX unchanged; the result equals upstream's index_add_ dispatch up to summation order.
    """

    def __init__(self, state: dict, encoder_dim: int, llm_dim: int, pool_stride: int,
                 top_k: int) -> None:  # fmt: skip
        super().__init__()
        self.k = pool_stride
        in_dim = encoder_dim * pool_stride
        _expect("norm.weight", _shape(state, "norm.weight"), (in_dim,), "encoder_dim × stride")
        self.norm = LlamaRMSNorm(in_dim, eps=1e-6)
        self.router = _linear(state, "router", in_dim, "encoder_dim × projector_pool_stride")
        num_experts = self.router.out_features
        if not 0 < top_k <= num_experts:
            raise TinyAudioError(f"num_experts_per_tok={top_k} must be in 1..{num_experts}")
        self.top_k = top_k
        self.shared_expert = _adapter(state, "shared_expert", in_dim, llm_dim, "stacked frames")
        self.experts = nn.ModuleList(
            _adapter(state, f"experts.{i}", in_dim, llm_dim, "stacked frames")
            for i in range(num_experts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(frame_stack(x, self.k))
        probs = torch.softmax(self.router(x), dim=-1, dtype=torch.float32).type_as(x)
        top_weights, top_index = torch.topk(probs, self.top_k, dim=-1)
        top_weights = top_weights / (top_weights.sum(dim=-1, keepdim=True) + 1e-6)
        gates = torch.zeros_like(probs).scatter(-1, top_index, top_weights)
        out = self.shared_expert(x)
        for i, expert in enumerate(self.experts):
            out = out + expert(x) * gates[..., i : i + 1]
        return out


class QFormerProjector(nn.Module):
    """Granite-style BLIP-2 Q-Former over zero-padded windows of encoder frames."""

    def __init__(self, state: dict, encoder_dim: int, llm_dim: int, window: int,
                 num_heads: int) -> None:  # fmt: skip
        super().__init__()
        _, self.num_queries, hidden = _shape(state, "query")
        self.window = window
        self.query = nn.Parameter(torch.zeros(1, self.num_queries, hidden))
        self.encoder_proj = None
        if "encoder_proj.weight" in state:
            self.encoder_proj = _linear(state, "encoder_proj", encoder_dim, "encoder_dim")
        elif hidden != encoder_dim:
            raise TinyAudioError(
                f"tensor shape mismatch: projector.query width {hidden} differs from encoder_dim "
                f"{encoder_dim} and there is no projector.encoder_proj"
            )
        layers = {int(k.split(".")[3]) for k in state if k.startswith("qformer.encoder.layer.")}
        intermediate = _shape(state, "qformer.encoder.layer.0.intermediate_query.dense.weight")[0]
        if hidden % num_heads:
            raise TinyAudioError(f"qformer_num_heads={num_heads} does not divide width {hidden}")
        config = Blip2QFormerConfig(
            hidden_size=hidden,
            num_hidden_layers=len(layers),
            num_attention_heads=num_heads,
            intermediate_size=intermediate,
            encoder_hidden_size=hidden,
            cross_attention_frequency=1,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
        )
        self.qformer = Blip2QFormerModel(config)
        self.linear = _linear(state, "linear", hidden, "Q-Former width")
        _expect("linear.weight", tuple(self.linear.weight.shape), (llm_dim, None), "LLM size")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder_proj is not None:
            x = self.encoder_proj(x)
        batch, frames, width = x.shape
        blocks = (
            frames + self.window - 1
        ) // self.window  # ONNX integer Div truncates: no -(-a // b)
        x = nn.functional.pad(x, (0, 0, 0, blocks * self.window - frames))
        x = x.reshape(batch * blocks, self.window, width)
        query = self.query.expand(batch * blocks, -1, -1)
        out = self.qformer(query_embeds=query, encoder_hidden_states=x).last_hidden_state
        return self.linear(out.reshape(batch, blocks * self.num_queries, -1))


class Projector(nn.Module):
    """A built projector plus the length rule that says how many of its rows are real audio."""

    def __init__(self, projector_type: str, module: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.projector_type = projector_type
        self.module = module
        self.pool_stride = config["projector_pool_stride"]
        self.qformer_window = config["qformer_window_size"]
        self.qformer_queries = getattr(module, "num_queries", 0)

    def forward(self, encoder_states: torch.Tensor) -> torch.Tensor:
        return self.module(encoder_states)

    def output_length(self, encoder_frames: int) -> int:
        return audio_tokens(
            self.projector_type,
            encoder_frames,
            pool_stride=self.pool_stride,
            qformer_window=self.qformer_window,
            qformer_queries=self.qformer_queries,
        )

    def describe(self) -> str:
        parts = [self.projector_type]
        if isinstance(self.module, MLPProjector):
            m = self.module
            parts.append(f"hidden {m.linear_1.out_features}")
            parts.append("bias" if m.linear_1.bias is not None else "no bias")
            parts.append("norm" if m.norm is not None else "no norm")
            parts.append("norm_2" if m.norm_2 is not None else "no norm_2")
        return ", ".join(parts)


def build_projector(
    state: dict[str, torch.Tensor], config: dict[str, Any], encoder_dim: int, llm_dim: int
) -> Projector:
    """Build the projector named by config.projector_type and load ``state`` into it strictly."""
    projector_type = check_projector_type(config["projector_type"])
    stride = config["projector_pool_stride"]
    if projector_type == "mlp":
        module: nn.Module = MLPProjector(state, encoder_dim, llm_dim, stride)
    elif projector_type == "mosa":
        module = MOSAProjector(state, encoder_dim, llm_dim)
    elif projector_type == "moe":
        module = MoEProjector(state, encoder_dim, llm_dim, stride, config["num_experts_per_tok"])
    else:
        module = QFormerProjector(
            state, encoder_dim, llm_dim, config["qformer_window_size"], config["qformer_num_heads"]
        )
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise TinyAudioError(
            f"checkpoint does not fit a '{projector_type}' projector: "
            f"missing {['projector.' + k for k in missing[:3]]}, "
            f"unexpected {['projector.' + k for k in unexpected[:3]]}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise TinyAudioError(
                f"tensor shape mismatch: projector.{key} is {list(tensor.shape)}, "
                f"expected {list(expected[key].shape)}"
            )
    module.load_state_dict(state)
    return Projector(projector_type, module.float().eval(), config)
