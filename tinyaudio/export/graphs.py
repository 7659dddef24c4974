"""The audio graphs of a bundle, traced with ``torch.onnx.export(dynamo=True)``.

- encoder: ``input_features`` [1, n_mels, frames] → ``encoder_states`` [1, frames', D], any length
  (the exact mode feeds 3000 frames, the fast mode only the real ones);
- projector: ``encoder_states`` → ``audio_embeds`` [1, rows, H], any length.

The decoder is not traced: export/decoder_graph.py writes it from the LLM's weights.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from tinyaudio import onnx_files
from tinyaudio.export.encoder import AudioEncoder
from tinyaudio.export.projectors import Projector
from tinyaudio.onnx_files import OPSET

MAX_FRAMES = 3000  # 30 s of mel frames: the encoder's window


class EncoderGraph(nn.Module):
    def __init__(self, encoder: AudioEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.module = encoder.module  # registers the weights

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features)


def export_encoder(encoder: AudioEncoder, n_mels: int, path: Path) -> None:
    frames = torch.export.Dim("frames", min=8, max=MAX_FRAMES)
    example = torch.randn(1, n_mels, 200)
    _export(EncoderGraph(encoder), (example,), path, ["input_features"], ["encoder_states"],
            ({2: frames},))  # fmt: skip


def export_projector(projector: Projector, encoder_dim: int, path: Path) -> None:
    frames = torch.export.Dim("encoder_frames", min=4, max=MAX_FRAMES)
    example = torch.randn(1, 100, encoder_dim)
    _export(projector, (example,), path, ["encoder_states"], ["audio_embeds"], ({1: frames},))


def _export(module, args, path: Path, inputs, outputs, dynamic_shapes) -> None:
    """Trace, optimise and save one graph; torch.onnx's chatter is kept off the terminal."""
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            verbose=False,
        )
    onnx_files.save_model(_name_weight_nodes(program.model_proto), path)


def _name_weight_nodes(model):
    """Name each weight MatMul/Gemm after its module (``...layers.3.mlp.down_proj``) so that
    quantization recipes can pick layers by name; drop the exporter's bulky debug metadata."""
    weights = {tensor.name for tensor in model.graph.initializer}
    for node in model.graph.node:
        props = {prop.key: prop.value for prop in node.metadata_props}
        scopes = props.get("pkg.torch.onnx.name_scopes")
        if node.op_type in ("MatMul", "Gemm") and scopes and node.input[1] in weights:
            node.name = ast.literal_eval(scopes)[-2]  # [..., module path, fx op name]
        del node.metadata_props[:]
    return model
