"""edgedeploy: take compressed PyTorch models to edge hardware through ONNX Runtime."""

__version__ = "0.1.0"
