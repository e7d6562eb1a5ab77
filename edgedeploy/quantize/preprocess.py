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

from edgedeploy.core.atomic import scratch_cwd
from edgedeploy.core.errors import disk_error

log = logging.getLogger("edgedeploy")
ATTEMPTS = (
    {"skip_symbolic_shape": False, "skip_optimization": False},
    {"skip_symbolic_shape": True, "skip_optimization": False},
    {"skip_symbolic_shape": True, "skip_optimization": True},
)


def preprocess(src: Path, dst: Path) -> dict:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).absolute(), Path(dst).absolute()
    failures = []
    for opts in ATTEMPTS:
        try:
            with scratch_cwd():  # a failed symbolic inference leaves 90 MB temp files in the cwd
                quant_pre_process(str(src), str(dst), **opts)
            gemms = gemm_to_matmul(dst)
            return {"applied": True, **opts, "fallbacks": failures, "gemm_to_matmul": gemms}
        except Exception as exc:
            disk = disk_error(exc, dst.parent)
            if disk is not None:  # no fallback mode helps with a full disk
                raise disk from exc
            failures.append(f"{opts}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            log.info("pre-processing attempt failed (%s), trying the next fallback", failures[-1])
    raise RuntimeError("quant_pre_process failed in every mode: " + " | ".join(failures))


def gemm_to_matmul(path: Path) -> int:
    """Rewrite Gemm with constant weights as MatMul + Add, as ORT's quantizers do internally,
    but before we resolve node names, so exclusions and sensitivity probes name the nodes
    that actually get quantized. The Gemm's metadata (PyTorch name scopes) is kept."""
    import onnx
    from onnxruntime.quantization.onnx_model import ONNXModel

    model = onnx.load(str(path))
    meta = {n.name: list(n.metadata_props) for n in model.graph.node if n.op_type == "Gemm"}
    if not meta:
        return 0
    om = ONNXModel(model)
    om.replace_gemm_with_matmul()
    for node in om.model.graph.node:
        for suffix in ("_MatMul", "_Add"):
            origin = node.name[: -len(suffix)] if node.name.endswith(suffix) else None
            if origin in meta and not node.metadata_props:
                node.metadata_props.extend(meta[origin])
    onnx.save(om.model, str(path))
    return len(meta)
