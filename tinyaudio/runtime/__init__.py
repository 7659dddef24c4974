"""Torch-free runtime: numpy + onnxruntime + tokenizers only. Nothing here may import torch."""
