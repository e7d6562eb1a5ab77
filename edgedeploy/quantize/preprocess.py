"""Pre-processing before quantization: ORT's quant_pre_process (symbolic shape inference,
graph optimization, ONNX shape inference), with the fallbacks real graphs need.

optimum's MiniLM export fails symbolic inference ("Incomplete symbolic shape inference")
and a fused graph makes quantize_dynamic fail with "Unable to find data type for
weight_name": skipping symbolic inference (and, for fused graphs, the ORT optimizer step)
fixes both, and the manifest records which path ran.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("edgedeploy")
ATTEMPTS = (
    {"skip_symbolic_shape": False, "skip_optimization": False},
    {"skip_symbolic_shape": True, "skip_optimization": False},
    {"skip_symbolic_shape": True, "skip_optimization": True},
)


def preprocess(src: Path, dst: Path) -> dict:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    failures = []
    for opts in ATTEMPTS:
        try:
            quant_pre_process(str(src), str(dst), **opts)
            return {"applied": True, **opts, "fallbacks": failures}
        except Exception as exc:  # noqa: BLE001 - each attempt's failure is recorded, the next is tried
            failures.append(f"{opts}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            log.info("pre-processing attempt failed (%s), trying the next fallback", failures[-1])
    raise RuntimeError("quant_pre_process failed in every mode: " + " | ".join(failures))


def value_types(model) -> dict:
    """elem_type for every tensor name the graph knows (inputs, outputs, value_info, initializers)."""
    types = {}
    for vi in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    return types
