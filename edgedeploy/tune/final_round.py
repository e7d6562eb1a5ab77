"""The winner's figures of record: one fresh interleaved round after the search has chosen.

Selection rounds rank many candidates and keep the best; a figure taken from them is the
minimum of several noisy draws. After the winner (and its session options) is chosen, it is
measured once more beside the baseline a user would otherwise ship, ONNX Runtime's
``quantize_dynamic`` with its defaults (per-tensor, signed 8-bit weights, no reduce_range, the
plain export, the profile's session; and again in the winner's session when it has its own, so
the headline ratio is like for like), and the float parent, in one round. That round is what
tune.json, tune.md and the manifest report; the selection rounds stay in tune.json's
candidates and the log.
"""

from __future__ import annotations

from edgedeploy.tune import space

BASELINE_SETTINGS = {"per_channel": False, "reduce_range": False, "weight_type": "int8"}
BASELINE = "baseline: quantize_dynamic defaults"
BASELINE_SAME_SESSION = BASELINE + " | the winner's session"
WINNER = "winner"
FLOAT = "float (parent)"


def of_record(search, leader: dict, session_options: dict, parents: dict) -> tuple[dict, dict | None]:
    """(the leader with ``final_measured``, the round) after the choice; for ``--objective size``
    (no latency to report) the leader as it is and None."""
    if search.opts.objective == "size":
        return leader, None
    final = measure(search, leader, session_options, parents)
    return {**leader, "final_measured": final["winner"]}, final


def measure(search, leader: dict, session_options: dict, parents: dict) -> dict:
    """{"winner", "float_parent", "baseline": {...}, "winner_vs_baseline_p50"}: the round's results.
    The ratio is against the baseline in the winner's session (``measured_same_session``) when the
    winner has session options of its own, else against the baseline as it is."""
    base = space.candidate("dynamic", **BASELINE_SETTINGS)
    rec = search.build(base, parents)
    entries = [(FLOAT, search.parent.path, None), (WINNER, search.state.candidate_dir(leader["id"]), session_options or None)]
    built = rec.get("status") == "built"
    if built:
        entries.append((BASELINE, search.state.candidate_dir(base["id"]), None))
        if session_options:
            entries.append((BASELINE_SAME_SESSION, search.state.candidate_dir(base["id"]), session_options))
    results = search.measure(f"final:{leader['id']}", entries)["results"]
    baseline = {"id": base["id"], "label": base["label"], "settings": BASELINE_SETTINGS, "measured": results.get(BASELINE)}
    if BASELINE_SAME_SESSION in results:
        baseline["measured_same_session"] = results[BASELINE_SAME_SESSION]
    baseline.update({k: rec[k] for k in ("mean_cosine", "worst_cosine", "size_bytes", "error") if rec.get(k) is not None})
    out = {"winner": results[WINNER], "float_parent": results[FLOAT], "baseline": baseline}
    if built:
        peer = results.get(BASELINE_SAME_SESSION) or results[BASELINE]
        out["winner_vs_baseline_p50"] = results[WINNER]["latency_ms"]["p50"] / peer["latency_ms"]["p50"]
    return out
