"""The quantization methods: the registry and the four built in (dynamic, static, fp16, int4).
A new method is one module with a ``@register``-ed ``QuantMethod``; importing it adds it."""

from edgedeploy.quantize.methods import dynamic, fp16, int4, static
from edgedeploy.quantize.methods.registry import QuantMethod, RunContext, all_methods, get, names, register

__all__ = ["QuantMethod", "RunContext", "all_methods", "dynamic", "fp16", "get", "int4", "names", "register", "static"]
