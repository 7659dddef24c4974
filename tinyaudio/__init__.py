"""tinyaudio: tiny-audio speech models exported to ONNX and run without PyTorch."""

__version__ = "0.1.0"
