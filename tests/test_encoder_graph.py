"""The encoder graph written from the audio encoder's weights, for both families: its states equal
transformers' own forward at every length the runtime feeds, attention is onnxruntime's fused
operator (no [heads, T, T] map in the graph), and what the builder cannot write is refused."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import GlmAsrEncoderConfig, WhisperConfig
from transformers.models.glmasr.modeling_glmasr import GlmAsrEncoder
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from tinyaudio.errors import TinyAudioError
from tinyaudio.export.encoder import AudioEncoder
from tinyaudio.export.encoder_graph import export_encoder

LAYERS = 2


def glmasr(hidden_size: int = 128, heads: int = 2, **extra) -> AudioEncoder:
    """head_dim 64 with GLM-ASR's partial rotary (the first 32 dims), as at real size."""
    config = GlmAsrEncoderConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                                 num_hidden_layers=LAYERS, num_attention_heads=heads,
                                 num_mel_bins=128, **extra)  # fmt: skip
    return AudioEncoder("glmasr", GlmAsrEncoder(config), None, hidden_size)


def whisper(**extra) -> AudioEncoder:
    config = WhisperConfig(num_mel_bins=80, d_model=64, encoder_layers=LAYERS,
                           encoder_attention_heads=4, encoder_ffn_dim=128,
                           max_source_positions=1500, **extra)  # fmt: skip
    return AudioEncoder("whisper", WhisperEncoder(config), None, 64)


ENCODERS = {"glmasr": glmasr, "whisper": whisper}


def randomised(encoder: AudioEncoder) -> AudioEncoder:
    """Every weight random, biases and norm scales included (they start at 0 and 1)."""
    torch.manual_seed(0)
    module = encoder.module.eval()
    with torch.no_grad():
        for name, tensor in module.named_parameters():
            tensor.copy_(torch.randn_like(tensor) * (0.2 if "bias" in name else 0.1))
            if "norm" in name and name.endswith("weight"):
                tensor.add_(1.0)
    return encoder


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_states_match_transformers(kind, tmp_path):
    encoder = randomised(ENCODERS[kind]())
    path = tmp_path / "encoder.onnx"
    export_encoder(encoder, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n_mels = encoder.module.conv1.in_channels
    for frames in (9, 200, 3000):  # the shortest window, a fast-mode clip, the exact mode's 30 s
        features = torch.randn(1, n_mels, frames)
        with torch.no_grad():
            expected = encoder(features).numpy()
        (states,) = session.run(None, {"input_features": features.numpy()})
        assert states.shape == expected.shape == (1, (frames + 1) // 2, encoder.hidden_size)
        np.testing.assert_allclose(states, expected, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_attention_is_one_fused_operator_per_layer(kind, tmp_path):
    path = tmp_path / "encoder.onnx"
    export_encoder(ENCODERS[kind](), path)
    graph = onnx.load(str(path), load_external_data=False).graph
    ops = Counter(node.op_type for node in graph.node)
    assert ops["MultiHeadAttention"] == LAYERS
    assert ops["MatMul"] == 4 * LAYERS  # q/k/v packed, output, fc1, fc2: no score MatMuls
    assert ops["Softmax"] == 0
    assert ops["RotaryEmbedding"] == (2 * LAYERS if kind == "glmasr" else 0)


def test_an_activation_it_cannot_write_is_refused(tmp_path):
    with pytest.raises(TinyAudioError, match="activation relu"):
        export_encoder(glmasr(hidden_act="relu"), tmp_path / "encoder.onnx")
