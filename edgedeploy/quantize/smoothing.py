"""SmoothQuant (Xiao et al., 2023) for static INT8, done natively on the ONNX graph.

Static INT8 quantizes each activation tensor with one scale; a few outlier channels (after
GELU, after LayerNorm) stretch that scale and the other channels lose their resolution.
SmoothQuant moves the difficulty into the weights, which are quantized per channel:
for a MatMul ``Y = X @ W`` and per input channel ``k``,

    s_k = max|X_k| ** alpha / max|W_k,:| ** (1 - alpha),   X' = X / s,   W' = diag(s) @ W,

so ``X' @ W' == X @ W`` in float. Here ``X / s`` is one Mul node per smoothed tensor (a
tensor feeding several MatMuls, such as Q/K/V, gets one scale from all their weights).

ONNX Runtime's ``extra_options={"SmoothQuant": True}`` delegates to Intel Neural
Compressor 2.x (``neural_compressor.adaptor.ox_utils``), which the 3.x releases on PyPI no
longer ship, so ORT's option cannot run in a current environment; this module needs only
onnx and onnxruntime.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgedeploy.runtimes.session import cpu_session

log = logging.getLogger("edgedeploy")
MIN_SCALE, MAX_SCALE = 1e-4, 1e4


SMOOTHABLE = ("MatMul", "Attention")  # Attention (com.microsoft, fused exports) computes X @ W + b first


def targets(model, excluded=()) -> dict[str, list]:
    """{activation tensor: [MatMul/Attention nodes with a constant 2-D weight reading it]}."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    groups: dict[str, list] = {}
    for n in model.graph.node:
        if n.op_type not in SMOOTHABLE or n.name in excluded or len(n.input) < 2 or (n.op_type == "MatMul" and len(n.input) != 2):
            continue
        w = inits.get(n.input[1])
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT or n.input[0] in inits:
            continue
        groups.setdefault(n.input[0], []).append(n)
    return groups


def activation_maxima(model_path: Path, tensors: list[str], batches) -> dict[str, np.ndarray]:
    """Per-channel (last axis) max |x| of ``tensors`` over the calibration batches."""
    import onnx

    model = onnx.load(str(model_path))
    present = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=t))
    probe = model_path.with_name(model_path.stem + ".smooth-probe.onnx")
    onnx.save(model, str(probe))
    try:
        sess = cpu_session(probe)
        wanted = {i.name for i in sess.get_inputs()}
        maxima: dict[str, np.ndarray] = {}
        for feeds in batches:
            outs = sess.run(tensors, {k: v for k, v in feeds.items() if k in wanted})
            for name, arr in zip(tensors, outs):
                m = np.abs(arr.reshape(-1, arr.shape[-1])).max(0)
                maxima[name] = m if name not in maxima else np.maximum(maxima[name], m)
    finally:
        probe.unlink(missing_ok=True)
    return maxima


def smooth(src: Path, dst: Path, batches, alpha: float = 0.5, excluded=(), min_outlier_ratio: float = 0.0) -> dict:
    """Write the smoothed float model ``dst``; return what was done (for the manifest). A tensor
    whose largest channel is under ``min_outlier_ratio`` x its median channel is left alone (its Mul
    would cost time and buy little)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    groups = targets(model, set(excluded))
    if not groups:
        onnx.save(model, str(dst))
        return {"alpha": alpha, "tensors": 0, "matmuls": 0}
    maxima = activation_maxima(Path(src), sorted(groups), batches)
    inits = {i.name: i for i in model.graph.initializer}
    new_nodes, done, folded, skipped = [], 0, 0, 0
    for tensor, nodes in sorted(groups.items()):
        a = maxima.get(tensor)
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        if a is None or any(w.shape[0] != a.shape[0] for w in weights):
            continue
        if min_outlier_ratio and a.max() < min_outlier_ratio * max(float(np.median(a)), 1e-12):
            skipped += 1
            continue
        w_max = np.max([np.abs(w).max(1) for w in weights], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.power(a, alpha) / np.power(w_max, 1 - alpha)
        s = np.where(np.isfinite(s) & (a > 0) & (w_max > 0), s, 1.0)
        s = np.clip(s, MIN_SCALE, MAX_SCALE).astype(np.float32)
        inv_s = (1.0 / s).astype(np.float32)
        if _fold(model, tensor, nodes, inv_s, inits):
            smoothed = tensor
            folded += 1
        else:
            smoothed = f"{tensor}_smoothed"
            inv = numpy_helper.from_array(inv_s, f"{tensor}_smooth_scale")
            model.graph.initializer.append(inv)
            new_nodes.append((nodes, helper.make_node("Mul", [tensor, inv.name], [smoothed], name=f"{tensor}_Smooth")))
        for n, w in zip(nodes, weights):
            scaled = numpy_helper.from_array((w * s[:, None]).astype(np.float32), f"{n.input[1]}_smoothed")
            model.graph.initializer.append(scaled)
            n.input[0], n.input[1] = smoothed, scaled.name
        done += len(nodes)
    _insert_before_consumers(model, new_nodes)
    drop_unused_initializers(model)
    onnx.save(model, str(dst))
    tensors = len(new_nodes) + folded
    log.info("smoothquant: alpha %.2f on %d activation tensors feeding %d MatMuls (%d folded into the op before)", alpha, tensors, done, folded)
    return {
        "alpha": alpha,
        "tensors": tensors,
        "matmuls": done,
        "folded": folded,
        "skipped_below_ratio": skipped,
        "min_outlier_ratio": min_outlier_ratio,
        "implementation": "edgedeploy (native SmoothQuant)",
    }


def _fold(model, tensor: str, nodes, inv_s: np.ndarray, inits) -> bool:
    """Fold ``x / s`` into a LayerNormalization (last axis) that makes ``x`` when only the smoothed
    nodes read it (pre-LN decoders), so no Mul runs. Not into the Mul that ends an exported GELU:
    a scale there stops ONNX Runtime fusing the GELU, which costs more than the Mul."""
    from onnx import numpy_helper

    names = sorted(n.name for n in nodes)
    readers = sorted(n.name for n in model.graph.node if tensor in n.input)
    if readers != names or not all(names) or tensor in {o.name for o in model.graph.output}:
        return False
    producer = next((n for n in model.graph.node if tensor in n.output), None)
    if producer is None or producer.op_type != "LayerNormalization" or any(a.name == "axis" and a.i != -1 for a in producer.attribute):
        return False
    params = [(slot, name) for slot, name in enumerate(producer.input[1:3], start=1) if name]
    k = inv_s.shape[0]
    if not all(name in inits and tuple(inits[name].dims) == (k,) for _, name in params):
        return False
    for slot, name in params:
        _replace_input(model, producer, slot, numpy_helper.to_array(inits[name]) * inv_s, f"{name}_{tensor}_smoothed")
    return True


def _replace_input(model, node, slot: int, value: np.ndarray, name: str) -> None:
    from onnx import numpy_helper

    model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    node.input[slot] = name


def _insert_before_consumers(model, new_nodes) -> None:
    """Keep the node list topologically sorted: each Mul goes just before its first consumer."""
    pending = {mul.name: ({c.name for c in consumers}, mul) for consumers, mul in new_nodes}
    order = []
    for n in model.graph.node:
        for name, (consumers, mul) in list(pending.items()):
            if n.name in consumers:
                order.append(mul)
                del pending[name]
        order.append(n)
    copies = [type(n)() for n in order]
    for c, n in zip(copies, order):
        c.CopyFrom(n)
    del model.graph.node[:]
    model.graph.node.extend(copies)


def drop_unused_initializers(model) -> None:
    """Remove the initializers no node reads (and no graph output names), in place."""
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used or i.name in {o.name for o in model.graph.output}]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
