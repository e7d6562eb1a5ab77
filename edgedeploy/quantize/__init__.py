"""``edgedeploy quantize``: dynamic/static INT8, FP16 and INT4 with ONNX Runtime.

``edgedeploy.quantize.api.quantize`` is the library call; ``edgedeploy.quantize.methods`` holds
the methods and their registry."""
