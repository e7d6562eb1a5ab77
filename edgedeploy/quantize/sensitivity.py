"""Measured sensitivity and the accuracy-aware search.

Sensitivity of a node = 1 - mean cosine of the model with *only that node* quantized,
against the float parent on real samples. The search keeps nodes in float greedily by
sensitivity per unit of latency cost (what quantizing the node saves, timed by ONNX Runtime's
profiler on this host: ``node_cost``; FLOPs where the profiler cannot name the node),
re-measuring the real quantized model after each step, until the budget holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgedeploy.core.errors import ValidationFailed
from edgedeploy.quality.fidelity import compare_to_outputs, reference_outputs
from edgedeploy.quantize import node_cost

log = logging.getLogger("edgedeploy")
WEIGHTED_OPS = ("MatMul", "Gemm", "Gather", "Attention", "EmbedLayerNormalization")


def candidates(pre: Path, method: str) -> dict[str, float]:
    """Quantizable nodes with a constant weight, and their FLOP-estimated relative cost if kept
    float (weight elements of MatMul/Gemm ~ FLOPs per token; Gathers cost size, not time)."""
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
    out = []
    probe = work / "probe.onnx"
    for i, node in enumerate(nodes):
        run_method(method, pre, probe, settings, [], only=[node])
        fid = compare_to_outputs(probe, ref_outputs)
        out.append((node, 1.0 - fid["mean_cosine"]))
        if (i + 1) % 10 == 0:
            log.info("sensitivity: %d/%d nodes measured", i + 1, len(nodes))
    return sorted(out, key=lambda t: t[1], reverse=True)


@dataclass
class Budget:
    """What the search must reach: output fidelity and/or a task-accuracy drop."""

    min_mean_cosine: float | None = None
    min_worst_cosine: float | None = None
    max_accuracy_drop: float | None = None
    accuracy: Callable[[Path], float] | None = None
    parent_accuracy: float | None = None

    def evaluate(self, path: Path, ref) -> dict:
        r = compare_to_outputs(path, ref)
        if self.max_accuracy_drop is not None:
            r["accuracy"] = self.accuracy(path)
            r["accuracy_drop"] = self.parent_accuracy - r["accuracy"]
        return r

    def met(self, r: dict) -> bool:
        return (
            (self.min_mean_cosine is None or r["mean_cosine"] >= self.min_mean_cosine)
            and (self.min_worst_cosine is None or r["worst_cosine"] >= self.min_worst_cosine)
            and (self.max_accuracy_drop is None or r["accuracy_drop"] <= self.max_accuracy_drop + 1e-12)
        )

    def describe(self) -> dict:
        return {
            "min_mean_cosine": self.min_mean_cosine,
            "min_worst_cosine": self.min_worst_cosine,
            "max_accuracy_drop": self.max_accuracy_drop,
            "parent_accuracy": self.parent_accuracy,
        }

    def shortfall(self, r: dict) -> str:
        parts = [f"best mean cosine {r['mean_cosine']:.4f} (worst {r['worst_cosine']:.4f})"]
        if "accuracy_drop" in r:
            parts.append(f"accuracy drop {r['accuracy_drop']:.4f} (accuracy {r['accuracy']:.4f} vs parent {self.parent_accuracy:.4f})")
        want = [
            f"mean >= {self.min_mean_cosine}" if self.min_mean_cosine is not None else "",
            f"worst >= {self.min_worst_cosine}" if self.min_worst_cosine is not None else "",
            f"drop <= {self.max_accuracy_drop}" if self.max_accuracy_drop is not None else "",
        ]
        return ", ".join(parts) + "; budget " + ", ".join(w for w in want if w)


def _entry(kept: int, r: dict, **extra) -> dict:
    e = {"kept_float": kept, **extra, "mean_cosine": r["mean_cosine"], "worst_cosine": r["worst_cosine"]}
    if "accuracy" in r:
        e["accuracy"] = r["accuracy"]
    return e


def _prune(method, pre, dst, settings, excluded, keep, costs, run_method, ref, budget, reached, history):
    """Backward elimination: re-quantize each float node, costliest first, while the
    budget still holds (a node chosen early may be redundant once later ones are float)."""
    added = [n for n in keep if n not in excluded]
    for node in sorted(added, key=lambda n: costs[n], reverse=True):
        trial = [n for n in keep if n != node]
        run_method(method, pre, dst, settings, trial)
        r = budget.evaluate(dst, ref)
        if budget.met(r):
            keep, reached = trial, r
            history.append(_entry(len(keep) - len(excluded), r, requantized=node))
            log.info("accuracy-aware: %s is not needed in float (mean cosine %.4f)", node, r["mean_cosine"])
    run_method(method, pre, dst, settings, keep)
    return keep, reached


def search(
    method,
    pre: Path,
    dst: Path,
    settings: dict,
    excluded: list[str],
    run_method,
    eval_src,
    parent_model: Path,
    budget: Budget,
    work: Path,
    max_float: int = 16,
) -> dict:

    ref = reference_outputs(parent_model, eval_src)
    start = budget.evaluate(dst, ref)
    history = [_entry(0, start)]
    result = {"budget": budget.describe(), "start": start, "history": history, "ranking": [], "excluded": list(excluded)}
    if budget.met(start):
        result.update(met=True, reached=start)
        return result
    costs, result["cost"] = node_cost.measured(candidates(pre, method), pre, dst, ref[0][0]) if ref else (candidates(pre, method), None)
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
    for node, _sens in ordered[:max_float]:
        keep.append(node)
        run_method(method, pre, dst, settings, keep)
        reached = budget.evaluate(dst, ref)
        history.append(_entry(len(keep) - len(excluded), reached, node=node))
        log.info("accuracy-aware: kept %s in float -> mean cosine %.4f, min %.4f", node, reached["mean_cosine"], reached["worst_cosine"])
        if budget.met(reached):
            keep, reached = _prune(method, pre, dst, settings, excluded, keep, costs, run_method, ref, budget, reached, history)
            result.update(met=True, reached=reached, excluded=keep)
            return result
    raise ValidationFailed(f"accuracy budget not met: {budget.shortfall(reached)}; {len(keep) - len(excluded)} node(s) kept in float")
