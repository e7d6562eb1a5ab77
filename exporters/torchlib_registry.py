"""Build torch.onnx's operator registry once per process, not once per graph.

Every ``torch.onnx.export(dynamo=True)`` call rebuilds ``ONNXRegistry.from_torchlib``: it walks
every torchlib function and parses its source to infer a signature (0.8-1.3 s here, about a
tenth of exporting MiniLM-L6). An encoder-decoder export traces three graphs and a decoder
with past two, so a command paid it up to three times. ``reused()`` keeps the first registry
built for an opset and hands each export a copy of it (export registers custom ops into the
registry it gets, so no export sees another's additions).

The registry is a private torch API: where it does not look as expected, exports build their
own as before (slower, never different).
"""

from __future__ import annotations

import contextlib
import threading

_lock = threading.Lock()
_built: dict = {}  # opset -> the registry from_torchlib built


def _registry_class():
    try:
        from torch.onnx._internal.exporter._registration import ONNXRegistry
    except ImportError:
        return None
    probe = ONNXRegistry()
    if not isinstance(getattr(probe, "functions", None), dict) or not hasattr(probe, "_opset_version"):
        return None
    return ONNXRegistry


def _copy(cls, registry):
    fresh = cls()
    fresh._opset_version = registry._opset_version
    fresh.functions = {target: list(metas) for target, metas in registry.functions.items()}
    return fresh


@contextlib.contextmanager
def reused():
    """Within this block, ``ONNXRegistry.from_torchlib(opset)`` returns a copy of the registry
    first built for that opset in this process."""
    cls = _registry_class()
    if cls is None or "from_torchlib" not in vars(cls):
        yield
        return
    original = vars(cls)["from_torchlib"]
    build = original.__func__

    def from_torchlib(klass, *args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        with _lock:
            if key not in _built:
                _built[key] = build(klass, *args, **kwargs)
            return _copy(klass, _built[key])

    with _lock:
        cls.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        with _lock:
            cls.from_torchlib = original
