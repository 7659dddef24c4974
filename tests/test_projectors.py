"""The loaded projector equals an independent numpy computation from the raw safetensors tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.loader import load_model
from tinyaudio.runtime.lengths import audio_tokens


def raw_projector(checkpoint) -> dict[str, np.ndarray]:
    tensors = load_file(str(checkpoint / "model.safetensors"))
    return {k[len("projector.") :]: v.astype(np.float64) for k, v in tensors.items()
            if k.startswith("projector.")}  # fmt: skip


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def rms_norm(x, weight, eps=1e-6):
    return weight * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def linear(t, name, x):
    y = x @ t[f"{name}.weight"].T
    return y + t[f"{name}.bias"] if f"{name}.bias" in t else y


def stack(x, k=4):
    frames = (x.shape[0] - k) // k + 1
    return x[: frames * k].reshape(frames, -1)


def conv1d_stride2(x, weight, bias):
    """x [T, C_in], weight [C_out, C_in, 3], padding 1, stride 2."""
    padded = np.pad(x, ((1, 1), (0, 0)))
    frames = (x.shape[0] + 2 - 3) // 2 + 1
    windows = np.stack([padded[2 * t : 2 * t + 3] for t in range(frames)])  # [T', 3, C_in]
    return np.einsum("tkc,ock->to", windows, weight) + bias


def mlp_reference(t, x):
    h = linear(t, "linear_1", stack(x))
    if "norm.weight" in t:
        h = rms_norm(h, t["norm.weight"])
    h = linear(t, "linear_2", gelu(h))
    return rms_norm(h, t["norm_2.weight"]) if "norm_2.weight" in t else h


def mosa_reference(t, x):
    h = gelu(conv1d_stride2(x, t["downsampler.0.weight"], t["downsampler.0.bias"]))
    h = gelu(conv1d_stride2(h, t["downsampler.2.weight"], t["downsampler.2.bias"]))
    w = softmax(linear(t, "router.2", np.maximum(linear(t, "router.0", h), 0)))
    experts = [k.split(".")[1] for k in t if k.startswith("experts.") and k.endswith("fc1.weight")]
    out = 0
    for i in sorted(experts, key=int):
        out = (
            out
            + linear(t, f"experts.{i}.fc2", gelu(linear(t, f"experts.{i}.fc1", h)))
            * w[:, int(i) : int(i) + 1]
        )
    return out


def moe_reference(t, x, top_k=2):
    """Upstream's sparse dispatch, token by token: top-k experts, renormalised weights."""
    h = rms_norm(stack(x), t["norm.weight"])
    probs = softmax(h @ t["router.weight"].T)

    def adapter(name, v):
        return linear(t, f"{name}.fc2", gelu(linear(t, f"{name}.fc1", v)))

    out = adapter("shared_expert", h)
    for row in range(h.shape[0]):
        chosen = np.argsort(-probs[row], kind="stable")[:top_k]
        weights = probs[row, chosen] / (probs[row, chosen].sum() + 1e-6)
        for expert, weight in zip(chosen, weights, strict=True):
            out[row] += adapter(f"experts.{expert}", h[row]) * weight
    return out


def attention(t, prefix, queries, keys, heads):
    q = linear(t, f"{prefix}.attention.query", queries)
    k = linear(t, f"{prefix}.attention.key", keys)
    v = linear(t, f"{prefix}.attention.value", keys)
    d = q.shape[-1] // heads

    def split(m):
        return m.reshape(m.shape[0], heads, d).transpose(1, 0, 2)

    ctx = softmax(split(q) @ split(k).transpose(0, 2, 1) / math.sqrt(d)) @ split(v)
    ctx = ctx.transpose(1, 0, 2).reshape(q.shape)
    out = linear(t, f"{prefix}.output.dense", ctx) + queries
    return layer_norm(out, t[f"{prefix}.output.LayerNorm.weight"],
                      t[f"{prefix}.output.LayerNorm.bias"], 1e-12)  # fmt: skip


def qformer_reference(t, x, heads=16, window=15):
    blocks = -(-x.shape[0] // window)
    x = np.pad(x, ((0, blocks * window - x.shape[0]), (0, 0)))
    layers = sorted({int(k.split(".")[3]) for k in t if k.startswith("qformer.encoder.layer.")})
    outputs = []
    for b in range(blocks):
        frames = x[b * window : (b + 1) * window]
        q = layer_norm(t["query"][0], t["qformer.layernorm.weight"], t["qformer.layernorm.bias"],
                       1e-12)  # fmt: skip
        for i in layers:
            p = f"qformer.encoder.layer.{i}"
            q = attention(t, f"{p}.attention", q, q, heads)
            q = attention(t, f"{p}.crossattention", q, frames, heads)
            ffn = linear(t, f"{p}.output_query.dense",
                         gelu(linear(t, f"{p}.intermediate_query.dense", q)))  # fmt: skip
            q = layer_norm(ffn + q, t[f"{p}.output_query.LayerNorm.weight"],
                           t[f"{p}.output_query.LayerNorm.bias"], 1e-12)  # fmt: skip
        outputs.append(q)
    return linear(t, "linear", np.concatenate(outputs))


REFERENCES = {"mlp": mlp_reference, "mosa": mosa_reference, "moe": moe_reference,
              "qformer": qformer_reference}  # fmt: skip
CASES = [
    ("mlp", {"mlp_variant": "current", "projector_hidden_dim": 48}),
    ("mlp", {"mlp_variant": "no_norm_2"}),
    ("mlp", {"mlp_variant": "biased"}),
    ("mosa", {}),
    ("moe", {"projector_hidden_dim": 40}),
    ("qformer", {}),
]


@pytest.mark.parametrize(("projector", "fields"), CASES, ids=lambda v: str(v))
def test_projector_matches_independent_computation(make_checkpoint, projector, fields):
    checkpoint = make_checkpoint(projector=projector, **fields)
    model = load_model(str(checkpoint))
    raw = raw_projector(checkpoint)
    rng = np.random.default_rng(0)
    for frames in (150, 61, 37):  # multiples and non-multiples of the stride and window
        x = rng.standard_normal((frames, 32))
        with torch.no_grad():
            got = model.projector(torch.from_numpy(x).float()[None])[0].double().numpy()
        want = REFERENCES[projector](raw, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        # The projector's rows are exactly what upstream's length formula predicts.
        assert got.shape[0] == model.projector.output_length(frames)


def test_moe_routing_actually_varies(make_checkpoint):
    """Guard for the test above: with one fixed expert pair the dense form would be trivial."""
    raw = raw_projector(make_checkpoint(projector="moe", projector_hidden_dim=40))
    h = rms_norm(stack(np.random.default_rng(1).standard_normal((200, 32))), raw["norm.weight"])
    choices = {tuple(sorted(np.argsort(-p)[:2])) for p in softmax(h @ raw["router.weight"].T)}
    assert len(choices) >= 3


def test_mlp_variants_are_detected_from_keys(make_checkpoint):
    described = {
        variant: load_model(str(make_checkpoint(mlp_variant=variant))).projector.describe()
        for variant in ("current", "no_norm_2", "biased")
    }
    assert described["current"] == "mlp, hidden 32, no bias, norm, norm_2"
    assert described["no_norm_2"] == "mlp, hidden 32, no bias, norm, no norm_2"
    assert described["biased"] == "mlp, hidden 64, bias, no norm, no norm_2"


@pytest.mark.parametrize(
    ("projector", "frames", "tokens"),
    [  # upstream's tests/test_projectors.py values
        ("mlp", 100, 25), ("mlp", 104, 26), ("mlp", 4, 1), ("mlp", 3, 0),
        ("mosa", 100, 25), ("mosa", 101, 26), ("mosa", 4, 1), ("mosa", 5, 2),
        ("moe", 100, 25), ("moe", 101, 25),
        ("qformer", 15, 3), ("qformer", 16, 6), ("qformer", 30, 6), ("qformer", 100, 21),
        ("mlp", 1500, 375),
    ],
)  # fmt: skip
def test_output_length_formulas(projector, frames, tokens):
    assert audio_tokens(projector, frames) == tokens


def test_shape_mismatch_is_a_clear_error(make_checkpoint, tmp_path):
    import shutil

    from safetensors.torch import load_file as load_torch
    from safetensors.torch import save_file

    checkpoint = tmp_path / "bad"
    shutil.copytree(make_checkpoint(), checkpoint)
    tensors = load_torch(str(checkpoint / "model.safetensors"))
    tensors["projector.linear_1.weight"] = torch.zeros(32, 100)
    save_file(tensors, str(checkpoint / "model.safetensors"))
    with pytest.raises(TinyAudioError, match=r"shape mismatch: projector.linear_1.weight is"):
        load_model(str(checkpoint))
