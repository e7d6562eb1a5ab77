"""What keeping a node in float costs, measured rather than counted in FLOPs.

ONNX Runtime's profiler times every kernel of the float model and of the fully quantized one
on this host, with the optimizations a deployment gets. ORT keeps the node names through its
fusions (``X``, ``fused X`` or ``X/MatMulAddFusion`` in float, ``X_quant`` once quantized), so a node's cost is its float kernel
time minus its quantized kernel time: what quantizing it saves, which keeping it float gives
back. A node the profiler does not show under either name keeps its FLOP estimate, scaled by
the median time per FLOP of the nodes that were timed.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
from pathlib import Path

from edgedeploy.runtimes.session import load, session_options

log = logging.getLogger("edgedeploy")
RUNS, WARMUP = 10, 3
FLOOR = 1e-3


def kernel_times(model_path: Path, feeds: dict, runs: int = RUNS) -> dict[str, float]:
    """{node name: mean kernel time in microseconds} over ``runs`` profiled runs."""
    with tempfile.TemporaryDirectory(prefix="edgedeploy-profile-") as tmp:
        opts = session_options({})
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = load(model_path, opts, ["CPUExecutionProvider"])
        wanted = {i.name for i in sess.get_inputs()}
        feeds = {k: v for k, v in feeds.items() if k in wanted}
        for _ in range(WARMUP):
            sess.run(None, feeds)
        for _ in range(runs):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    total: dict[str, float] = {}
    for e in events if isinstance(events, list) else []:
        name = e.get("name", "") if isinstance(e, dict) else ""
        if e.get("cat") == "Node" and name.endswith("_kernel_time") and isinstance(e.get("dur"), int | float):
            node = name[: -len("_kernel_time")].removeprefix("fused ")  # ORT names an activation fusion "fused <node>"
            total[node] = total.get(node, 0.0) + float(e["dur"])
    # warm-up runs are profiled too; the mean over every profiled run is what is reported
    return {k: v / (runs + WARMUP) for k, v in total.items()}


def _time_of(times: dict[str, float], node: str) -> float:
    """``node``'s kernel time, also under the name a fusion gave it (``<node>/MatMulAddFusion``)."""
    if node in times:
        return times[node]
    return sum(t for k, t in times.items() if k.startswith(node + "/") and "/" not in k[len(node) + 1 :])


def measured(flop_costs: dict[str, float], float_model: Path, quantized_model: Path, feeds: dict) -> tuple[dict[str, float], dict]:
    """(relative costs, how they were obtained): measured where the profiler names the node in
    both models, the scaled FLOP estimate elsewhere, normalized to the costliest = 1."""
    tf, tq = kernel_times(float_model, feeds), kernel_times(quantized_model, feeds)
    timed = {n: (_time_of(tf, n), _time_of(tq, f"{n}_quant")) for n in flop_costs}
    saved = {n: f - q for n, (f, q) in timed.items() if f and q}
    info = {"source": "onnxruntime profiler on this host", "nodes_timed": len(saved), "nodes": len(flop_costs)}
    if len(saved) < max(1, len(flop_costs) // 2):
        log.info("accuracy-aware: the profiler named %d of %d nodes; costs stay FLOP estimates", len(saved), len(flop_costs))
        return flop_costs, {**info, "source": "FLOP estimate (the profiler did not name enough nodes)"}
    per_flop = statistics.median(max(s, 0.0) / flop_costs[n] for n, s in saved.items())
    raw = {n: max(saved.get(n, flop_costs[n] * per_flop), 0.0) for n in flop_costs}
    top = max(raw.values(), default=0.0) or 1.0
    info["saved_us"] = {n: round(s, 1) for n, s in sorted(saved.items(), key=lambda t: -t[1])[:10]}
    return {n: max(v / top, FLOOR) for n, v in raw.items()}, info
