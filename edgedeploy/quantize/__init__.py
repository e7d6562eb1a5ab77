"""``edgedeploy quantize``: dynamic/static INT8, FP16 and INT4 with ONNX Runtime."""

from edgedeploy.quantize.api import METHODS, quantize

__all__ = ["METHODS", "quantize"]
