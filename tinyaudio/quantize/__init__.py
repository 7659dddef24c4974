"""INT8 / INT4 quantization of exported graphs (onnx + onnxruntime only, never torch)."""
