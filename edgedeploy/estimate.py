"""Roofline estimates from a model's FLOPs and bytes and a profile's peaks.

Always labelled as an estimate. The method is calibrated against a measurement on the
host's own profile, and that error is reported next to every estimate.
"""

from __future__ import annotations

import math

import numpy as np

from edgedeploy.core.atomic import scratch_cwd
from edgedeploy.device.doctor import diagnose
from edgedeploy.device.profiles import load, run_settings
from edgedeploy.measure_options import DEFAULT_SHAPE
from edgedeploy.runtimes import job as rt_job
from edgedeploy.runtimes.inputs import parse_shape, resolve_dims

INT_OPS = {"MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "QLinearConv", "ConvInteger", "MatMulNBits", "QGemm"}
MATMUL_OPS = {"MatMul", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "FusedMatMul", "MatMulNBits", "QGemm", "Gemm"}
CONV_OPS = {"Conv", "QLinearConv", "ConvInteger", "FusedConv"}


def default_dims(art) -> dict[str, int]:
    """The dims an estimate binds when no --shape is given, by their exact names: batch=1 and
    sequence=128 where the model has such dims (as bench's default), the rest at the sizes
    validation ran them at."""
    wanted = {**art.validated_dims(), **parse_shape(DEFAULT_SHAPE)}
    return resolve_dims(art.signature(), wanted, strict=False)


def _bind(model, shape: dict):
    sig = []
    init = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in init:
            continue
        dims = [d.dim_param if d.dim_param else d.dim_value for d in vi.type.tensor_type.shape.dim]
        sig.append({"name": vi.name, "shape": dims})
    bound = resolve_dims(sig, shape)
    for vi in model.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in bound:
                d.dim_value = bound[d.dim_param]
    return bound


def count(model_path, shape: dict) -> dict:
    """FLOPs (2 per multiply-accumulate) of MatMul/Gemm/Conv/Attention nodes and bytes moved
    (weights read once, every intermediate tensor written and read once)."""
    import onnx
    from onnx import numpy_helper

    model, shapes = _shapes(model_path, shape)
    inits = {i.name: i for i in model.graph.initializer}

    def dims(name):
        d = shapes.get(name, (None, 0))[0]
        return None if d is None or any(x is None for x in d) else d

    flops = {"float": 0.0, "int": 0.0}
    unknown = []
    for node in model.graph.node:
        kind = "int" if node.op_type in INT_OPS else "float"
        n = _node_flops(node, dims)
        if n is None:
            unknown.append(node.name or node.op_type)
        else:
            flops["float" if node.op_type == "Attention" else kind] += n
    itemsize = {1: 4, 10: 2, 11: 8, 7: 8, 6: 4, 3: 1, 2: 1, 16: 2, 9: 1, 22: 1, 21: 1}
    weight_bytes = sum(numpy_helper.to_array(t).nbytes if t.data_location != onnx.TensorProto.EXTERNAL else 0 for t in inits.values())
    act_bytes = 0.0
    for node in model.graph.node:
        for o in node.output:
            d = dims(o)
            if d is not None:
                act_bytes += 2.0 * float(np.prod(d)) * itemsize.get(shapes[o][1], 4)
    return {
        "flops_float": flops["float"],
        "flops_int": flops["int"],
        "weight_bytes": float(weight_bytes),
        "activation_bytes": act_bytes,
        "bytes": float(weight_bytes) + act_bytes,
        "uncounted_nodes": unknown[:20],
    }


def _shapes(model_path, shape: dict):
    """(the model with ``shape`` bound and shapes inferred, name -> (dims, element type))."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(model_path))
    _bind(model, shape)
    try:  # ORT's symbolic inference knows the contrib ops of fused graphs
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        with scratch_cwd():  # it may drop temp models in the cwd
            model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:
        model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = (dims, vi.type.tensor_type.elem_type)
    for t in model.graph.initializer:
        shapes[t.name] = (list(t.dims), t.data_type)
    return model, shapes


def _node_flops(node, dims) -> float | None:
    """FLOPs of one node (0 for ops not counted), None where its shapes are unknown."""
    out = dims(node.output[0]) if node.output else None
    if node.op_type in MATMUL_OPS:
        a = dims(node.input[0])
        k = next((at.i for at in node.attribute if at.name == "K"), None) if node.op_type == "MatMulNBits" else (a[-1] if a else None)
        return None if out is None or k is None else 2.0 * float(np.prod(out)) * k
    if node.op_type in CONV_OPS:
        w = dims(node.input[3] if node.op_type == "QLinearConv" else node.input[1])
        return None if out is None or w is None else 2.0 * float(np.prod(out)) * float(np.prod(w[1:]))
    if node.op_type == "Attention":
        x, w = dims(node.input[0]), dims(node.input[1])
        if x is None or w is None:
            return None
        b, s, hidden = x
        return 2.0 * b * s * hidden * w[1] + 4.0 * b * s * s * hidden
    return 0.0


def roofline(counts: dict, profile: dict) -> dict:
    peaks = profile["peaks"]
    compute_s = counts["flops_float"] / (peaks["fp32_gflops"] * 1e9) + counts["flops_int"] / (peaks["int8_gops"] * 1e9)
    memory_s = counts["bytes"] / (peaks["memory_bandwidth_gbs"] * 1e9)
    return {
        "estimated_ms": max(compute_s, memory_s) * 1e3,
        "compute_ms": compute_s * 1e3,
        "memory_ms": memory_s * 1e3,
        "bound": "compute" if compute_s >= memory_s else "memory",
        "formula": "max(flops_float/fp32_peak + flops_int/int8_peak, bytes/bandwidth)",
        "peaks_source": peaks["source"],
        "kind": "estimated",
    }


def calibrate(model_path, shape: dict, counts: dict) -> dict:
    """Measure the model on this host and compare with the estimate for the host's own
    profile: the ratio is the method's error here, printed beside every estimate."""

    host_profile = load(diagnose()["closest_profile"])
    est = roofline(counts, host_profile)
    doc = rt_job.run_job(
        {
            "models": [{"name": "calibration", "path": str(model_path)}],
            "shape": shape,
            "iterations": 40,
            "duration_s": 15.0,
            "warmup": 5,
            "warmup_s": 2.0,
            "profile": {"name": host_profile["name"], "run": run_settings(host_profile)},
        }
    )
    measured = doc["results"][0]["latency_ms"]["p50"]
    ratio = measured / est["estimated_ms"] if est["estimated_ms"] > 0 else math.nan
    return {
        "host_profile": host_profile["name"],
        "measured_p50_ms": measured,
        "estimated_ms": est["estimated_ms"],
        "measured_over_estimated": ratio,
        "samples": doc["results"][0]["samples"],
        "cv": doc["results"][0]["latency_ms"]["cv"],
    }
