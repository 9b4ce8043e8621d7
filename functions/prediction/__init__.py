"""The prediction path: published iterations answered from lazily loaded ONNX sessions (no torch)."""
