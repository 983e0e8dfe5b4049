"""namu's IR: an ``onnx_ir`` model with namu's opsets, types and metadata."""
