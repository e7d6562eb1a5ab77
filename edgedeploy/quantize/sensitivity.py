"""Measured sensitivity and the accuracy-aware search.

Sensitivity of a node = 1 - mean cosine of the model with *only that node* quantized,
against the float parent on real samples. The search keeps nodes in float greedily by
sensitivity per unit of latency cost (a float island costs roughly its MatMul's share of
the FLOPs), re-measuring the real quantized model after each step, until the budget holds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgedeploy.errors import ValidationFailed

log = logging.getLogger("edgedeploy")
WEIGHTED_OPS = ("MatMul", "Gemm", "Gather", "Attention", "EmbedLayerNormalization")


def candidates(pre: Path, method: str) -> dict[str, float]:
    """Quantizable nodes with a constant weight, and their relative cost if kept float
    (weight elements of MatMul/Gemm ~ FLOPs per token; Gathers cost size, not time)."""
    import onnx

    model = onnx.load(str(pre), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    ops = ("MatMul",) if method == "int4" else WEIGHTED_OPS
    cost = {}
    for n in model.graph.node:
        if n.op_type not in ops:
            continue
        w = next((inits[i] for i in n.input if i in inits), None)
        if w is None or len(w.dims) != 2:
            continue
        cost[n.name] = float(w.dims[0] * w.dims[1]) * (0.05 if n.op_type in ("Gather", "EmbedLayerNormalization") else 1.0)
    top = max(cost.values(), default=1.0)
    return {k: max(v / top, 1e-3) for k, v in cost.items()}


def rank(method, pre: Path, settings: dict, nodes: list[str], run_method, ref_outputs, work: Path) -> list[tuple[str, float]]:
    """[(node, sensitivity)] sorted most sensitive first."""
    from edgedeploy.fidelity import compare_to_outputs

    out = []
    probe = work / "probe.onnx"
    for i, node in enumerate(nodes):
        run_method(method, pre, probe, settings, [], only=[node])
        fid = compare_to_outputs(probe, ref_outputs)
        out.append((node, 1.0 - fid["mean_cosine"]))
        if (i + 1) % 10 == 0:
            log.info("sensitivity: %d/%d nodes measured", i + 1, len(nodes))
    return sorted(out, key=lambda t: t[1], reverse=True)


def _prune(method, pre, dst, settings, excluded, keep, costs, run_method, ref, min_cosine, min_worst, reached, history):
    """Backward elimination: re-quantize each float node, costliest first, while the
    budget still holds (a node chosen early may be redundant once later ones are float)."""
    from edgedeploy.fidelity import compare_to_outputs

    added = [n for n in keep if n not in excluded]
    for node in sorted(added, key=lambda n: costs[n], reverse=True):
        trial = [n for n in keep if n != node]
        run_method(method, pre, dst, settings, trial)
        fid = compare_to_outputs(dst, ref)
        if meets(fid, min_cosine, min_worst):
            keep, reached = trial, fid
            history.append({"kept_float": len(keep) - len(excluded), "requantized": node, "mean_cosine": fid["mean_cosine"], "min_cosine": fid["min_cosine"]})
            log.info("accuracy-aware: %s is not needed in float (mean cosine %.4f)", node, fid["mean_cosine"])
    run_method(method, pre, dst, settings, keep)
    return keep, reached


def meets(fid: dict, min_cosine: float, min_worst: float | None) -> bool:
    return fid["mean_cosine"] >= min_cosine and (min_worst is None or fid["min_cosine"] >= min_worst)


def search(method, pre: Path, dst: Path, settings: dict, excluded: list[str], run_method, eval_src, parent_model: Path,
           min_cosine: float, min_worst: float | None, work: Path, max_float: int = 16) -> dict:
    from edgedeploy.fidelity import compare_to_outputs, reference_outputs

    ref = reference_outputs(parent_model, eval_src)
    start = compare_to_outputs(dst, ref)
    history = [{"kept_float": 0, "mean_cosine": start["mean_cosine"], "min_cosine": start["min_cosine"]}]
    result = {"budget": {"min_mean_cosine": min_cosine, "min_worst_cosine": min_worst}, "start": start, "history": history,
              "ranking": [], "excluded": list(excluded)}
    if meets(start, min_cosine, min_worst):
        result.update(met=True, reached=start)
        return result
    costs = candidates(pre, method)
    nodes = [n for n in costs if n not in excluded]
    log.info("accuracy-aware: measuring the sensitivity of %d nodes", len(nodes))
    ranking = rank(method, pre, settings, nodes, run_method, ref, work)
    # Nodes that barely matter go last, whatever their cost: a float island that buys nothing is pure loss.
    floor = 0.05 * ranking[0][1] if ranking else 0.0
    ordered = sorted((t for t in ranking if t[1] > floor), key=lambda t: t[1] / costs[t[0]], reverse=True)
    ordered += [t for t in ranking if t[1] <= floor]
    result["ranking"] = [{"node": n, "sensitivity": s, "relative_cost": costs[n]} for n, s in ranking[:20]]
    keep = list(excluded)
    reached = start
    for node, sens in ordered[:max_float]:
        keep.append(node)
        run_method(method, pre, dst, settings, keep)
        reached = compare_to_outputs(dst, ref)
        history.append({"kept_float": len(keep) - len(excluded), "node": node, "mean_cosine": reached["mean_cosine"], "min_cosine": reached["min_cosine"]})
        log.info("accuracy-aware: kept %s in float -> mean cosine %.4f, min %.4f", node, reached["mean_cosine"], reached["min_cosine"])
        if meets(reached, min_cosine, min_worst):
            keep, reached = _prune(method, pre, dst, settings, excluded, keep, costs, run_method, ref, min_cosine, min_worst, reached, history)
            result.update(met=True, reached=reached, excluded=keep)
            return result
    raise ValidationFailed(
        f"accuracy budget not met: best mean cosine {reached['mean_cosine']:.4f} (min {reached['min_cosine']:.4f}) with "
        f"{len(keep) - len(excluded)} node(s) kept in float; budget mean >= {min_cosine}"
        + (f", min >= {min_worst}" if min_worst is not None else "")
    )
