"""The projector graph, traced with ``torch.onnx.export(dynamo=True)``: ``encoder_states``
[1, frames, D] → ``audio_embeds`` [1, rows, H], any length.

The four projector families share nothing but this contract, so tracing is what keeps them exact.
The encoder and decoder are not traced: export/encoder_graph.py and export/decoder_graph.py write
them from their weights with onnxruntime's fused attention.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from tinyaudio import onnx_files
from tinyaudio.export.projectors import Projector
from tinyaudio.onnx_files import OPSET

MAX_FRAMES = 3000  # 30 s of mel frames: the encoder's window


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
