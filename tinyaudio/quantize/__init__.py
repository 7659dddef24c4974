"""INT8 / INT4 quantization of exported graphs (onnx + onnxruntime only, never torch)."""

# The block sizes onnxruntime's MatMulNBits kernels (MLAS) accept; others fail at load time.
BLOCK_SIZES = (16, 32, 64, 128, 256)
