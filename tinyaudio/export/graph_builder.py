"""Writing an ONNX graph node by node from a PyTorch module's weights (no tracing).

The encoder and decoder graphs are written this way so that they use onnxruntime's fused
operators (attention, norms) directly and stream each weight to disk as it is added.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from tinyaudio.onnx_files import MS_DOMAIN, OPSET, ExternalWeights


class GraphBuilder:
    """Nodes and their weights; each weight goes straight to the data file as it is added."""

    def __init__(self, weights: ExternalWeights, model: torch.nn.Module) -> None:
        self.weights = weights
        self.names = {id(m): n for n, m in model.named_modules()}  # weights named as in PyTorch
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._constants: set[str] = set()
        self._count = 0

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.weights.add(name, array))
        return name

    def parameter(self, module: torch.nn.Module, kind: str = "weight") -> str:
        """A module's parameter, named as in PyTorch (``layers.3.input_layernorm.weight``)."""
        return self.weight(f"{self.names[id(module)]}.{kind}", as_array(getattr(module, kind)))

    def constant(self, values: list[int]) -> str:
        """An int64 constant, one initializer per distinct value (layers share their shapes)."""
        name = "const." + "_".join(map(str, values)).replace("-", "m")
        if name not in self._constants:
            self._constants.add(name)
            array = np.array(values, np.int64)
            self.initializers.append(onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int | list[str] = 1, name: str = "",
             domain: str = "", **attrs) -> list[str]:  # fmt: skip
        """Add a node; ``outputs`` is a count (fresh names) or the names themselves."""
        self._count += 1
        name = name or f"{op}_{self._count}"
        if isinstance(outputs, int):
            outputs = [f"{name}/out{i}" for i in range(outputs)]
        node = helper.make_node(op, inputs, outputs, name, domain=domain or None, **attrs)
        self.nodes.append(node)
        return outputs

    def linear(self, x: str, modules: list[torch.nn.Linear], name: str = "") -> str:
        """x @ [W₁ᵀ | W₂ᵀ | …] (+ biases): one MatMul for projections that read the same input.
        The MatMul is named ``name`` (default: the module's) so quantization recipes can pick it."""
        name = name or self.names[id(modules[0])]
        matrix = torch.cat([m.weight.detach().float() for m in modules]).T.contiguous().numpy()
        (out,) = self.node("MatMul", [x, self.weight(name + ".weight", matrix)], name=name)
        if any(m.bias is not None for m in modules):
            bias = torch.cat([_bias(m) for m in modules]).numpy()
            (out,) = self.node("Add", [out, self.weight(name + ".bias", bias)])
        return out

    def norm_weights(self, norm: torch.nn.Module) -> list[str]:
        """Scale (and shift, for a LayerNorm that has one): the norm nodes' weight inputs."""
        biased = isinstance(norm, torch.nn.LayerNorm) and norm.bias is not None
        return [self.parameter(norm), *([self.parameter(norm, "bias")] if biased else [])]

    def skip_norm(self, x: str, skip: str, norm: torch.nn.Module, eps: float,
                  normed: str = "") -> tuple[str, str]:  # fmt: skip
        """(norm(x + skip), x + skip) in one fused node: onnxruntime's SkipLayerNormalization for
        a LayerNorm, SkipSimplifiedLayerNormalization for an RMSNorm. ``normed`` names the
        first output (default: after the norm)."""
        name = self.names[id(norm)]
        layer_norm = isinstance(norm, torch.nn.LayerNorm)
        op = "SkipLayerNormalization" if layer_norm else "SkipSimplifiedLayerNormalization"
        outputs = [normed or f"{name}/normed", "", "", f"{name}/sum"]
        self.node(op, [x, skip, *self.norm_weights(norm)], outputs, f"{name}/skip", MS_DOMAIN,
                  epsilon=eps)  # fmt: skip
        return outputs[0], outputs[3]

    def save(self, name: str, inputs: list[onnx.ValueInfoProto],
             outputs: list[onnx.ValueInfoProto]) -> None:  # fmt: skip
        body = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)]
        self.weights.save(helper.make_model(body, opset_imports=opsets, producer_name="tinyaudio"))


def as_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().contiguous().numpy()


def rotary_tables(rotary: torch.nn.Module, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [positions, rotary dims / 2] exactly as a transformers rotary module computes
    them (inv_freq carries any rope scaling and partial rotary; attention_scaling multiplies
    both)."""
    freqs = torch.arange(positions, dtype=torch.float32)[:, None] * rotary.inv_freq.float()[None]
    scaling = float(getattr(rotary, "attention_scaling", 1.0))
    return as_array(freqs.cos() * scaling), as_array(freqs.sin() * scaling)


def _bias(module: torch.nn.Linear) -> torch.Tensor:
    if module.bias is None:
        return torch.zeros(module.out_features)
    return module.bias.detach().float()


def float_input(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
