"""``tune.json`` / ``tune.md`` / ``tune.html``: every candidate with its fidelity, latency and
size, the Pareto front of latency against mean cosine, and why the winner won."""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from edgedeploy.core.atomic import write_bytes_atomic, write_json_atomic
from edgedeploy.core.plots import pareto_front, scatter_pareto

TUNE_SCHEMA = 1
FILES = ("tune.json", "tune.md", "tune.html")


def document(search, recs: list[dict], leader: dict | None, session: dict | None, skipped: list[str], budget: dict) -> dict:
    o = search.opts
    rows = []
    for r in recs:
        row = {k: r.get(k) for k in ("id", "label", "method", "parent", "settings", "status", "error", "mean_cosine", "worst_cosine", "size_bytes")}
        row.update({k: r[k] for k in ("accuracy", "accuracy_drop", "nodes_kept_float", "build_s") if k in r})
        row["misses"] = search.misses(r)
        row["meets_budget"] = not row["misses"]
        if r.get("measured"):
            row["measured"] = r["measured"]
        rows.append(row)
    points = [(r["label"], r["measured"]["latency_ms"]["p50"], r["mean_cosine"]) for r in rows if r.get("measured")]
    front = sorted(pareto_front(points)) if points else []
    doc = {
        "schema": TUNE_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parent": str(search.parent.path),
        "parent_digest": search.parent.digest,
        "target": o.host or "local",
        "profile": search.profile["name"],
        "objective": o.objective,
        "budget": budget,
        "options": o.recorded(),
        "elapsed_s": time.monotonic() - search.t0,
        "skipped": skipped,
        "candidates": rows,
        "pareto_front": front,
        "float_parent": search.float_result,
        "rounds": {k.split(":")[0]: {"model_cache": r.get("model_cache"), "remote": r.get("remote")} for k, r in search.state.doc["rounds"].items()},
        "winner": None,
    }
    if leader is not None:
        selected = leader.get("session_measured") or leader["measured"]
        measured = leader.get("final_measured") or selected
        doc["winner"] = {
            "id": leader["id"],
            "label": leader["label"],
            "method": leader["method"],
            "settings": leader["settings"],
            "session": (session or {}).get("options") or {},
            "measured": measured,
            "selection_measured": selected,
            "candidate_round": leader["measured"],
            "stable": measured["stable"],
            "why": _why(rows, leader, o.objective),
        }
        if session and session.get("round"):
            doc["session_search"] = session["round"]["results"]
        if session and session.get("final"):
            doc["final_round"] = session["final"]
    return doc


def _why(rows: list[dict], leader: dict, objective: str) -> str:
    feasible = [r for r in rows if r["meets_budget"] and r.get("measured")]
    runner = sorted((r for r in feasible if r["id"] != leader["id"]), key=lambda r: _value(r, objective))
    lead_v = _value(next(r for r in rows if r["id"] == leader["id"]), objective)
    text = f"best {objective} ({_fmt(lead_v, objective)}) of {len(feasible)} candidate(s) that meet the budget"
    if runner:
        text += f"; runner-up {runner[0]['label']} at {_fmt(_value(runner[0], objective), objective)}"
    rejected = len([r for r in rows if not r["meets_budget"]])
    if rejected:
        text += f"; {rejected} candidate(s) missed the budget"
    return text


def objective_value(measured: dict, size: int, objective: str) -> float:
    """The objective as a number to minimise (rates negated); a value the round did not report ranks last."""
    gen = measured.get("generation") or {}
    if objective == "size":
        return float(size)
    if objective == "throughput":
        return -float(measured.get("throughput_per_s") or 0.0)
    if objective == "decode":
        return -float(gen.get("decode_tokens_per_s") or 0.0)
    v = (gen.get("ttft_ms") or {}).get("p50") if objective == "ttft" else measured["latency_ms"][objective]
    return float("inf") if v is None else float(v)


def _value(r: dict, objective: str) -> float:
    return objective_value(r["measured"], r["size_bytes"], objective)


def _fmt(v: float, objective: str) -> str:
    if objective == "size":
        return f"{v / 1e6:.1f} MB"
    if objective == "throughput":
        return f"{-v:.1f}/s"
    if objective == "decode":
        return f"{-v:.1f} tokens/s"
    return f"{v:.2f} ms"


def manifest_record(doc: dict) -> dict:
    """What the published artifact's manifest keeps of the search (the full table is tune.json)."""
    return {
        "winner": doc["winner"],
        "objective": doc["objective"],
        "budget": doc["budget"],
        "target": doc["target"],
        "profile": doc["profile"],
        "candidates": len(doc["candidates"]),
        "pareto_front": doc["pareto_front"],
        "split": doc.get("split"),
        "final_round": doc.get("final_round"),
        "report": "tune.json",
    }


def _table(doc: dict) -> list[list[str]]:
    rows = []
    win = (doc.get("winner") or {}).get("id")
    for r in doc["candidates"]:
        m = r.get("measured") or {}
        lat = m.get("latency_ms") or {}
        rows.append(
            [
                ("**" if r["id"] == win else "") + r["label"] + ("**" if r["id"] == win else ""),
                r["status"],
                f"{r['mean_cosine']:.4f}" if r.get("mean_cosine") is not None else "-",
                f"{r['worst_cosine']:.4f}" if r.get("worst_cosine") is not None else "-",
                f"{r['size_bytes'] / 1e6:.1f}" if r.get("size_bytes") else "-",
                f"{lat['p50']:.2f}" if lat else "-",
                f"{lat['cv']:.1%}" if lat else "-",
                ("yes" if m.get("stable") else "UNSTABLE") if m else "-",
                "yes" if r["meets_budget"] else "; ".join(r["misses"])[:90],
            ]
        )
    return rows


HEADERS = ["candidate", "status", "mean cos", "worst cos", "MB", "p50 ms", "cv", "stable", "meets budget"]


def to_markdown(doc: dict) -> str:
    w = doc.get("winner")
    lines = [
        f"# edgedeploy tune: {Path(doc['parent']).name} on {doc['target']} ({doc['profile']})",
        "",
        f"Objective: {doc['objective']}. Budget: " + (", ".join(f"{k} {v}" for k, v in doc["budget"].items() if v is not None) or "none") + ".",
        "",
    ]
    if w:
        sess = ", ".join(f"{k}={v}" for k, v in w["session"].items()) or "the profile's"
        lines += [f"**Winner: {w['label']}** with session options {sess}: {w['why']}." + ("" if w["stable"] else " Its latency stayed UNSTABLE."), ""]
        if w["session"] and doc.get("session_search"):
            own = next(iter(doc["session_search"].values()))["latency_ms"]["p50"]
            mine = w["selection_measured"]["latency_ms"]["p50"]
            lines += [
                f"Its session options measured p50 {mine:.2f} ms against {own:.2f} ms with the profile's ({mine / own:.2f}x); "
                "the artifact's manifest keeps them as `run`, which `edgedeploy bench` and the device harness apply.",
                "",
            ]
        held = w.get("held_out")
        if held:
            rows = doc["split"]["held_out_rows"]
            lines += [
                f"On the held-out rows {rows[0]}-{rows[1] - 1} of --data, which no candidate was compared on: mean cosine "
                f"{held['mean_cosine']:.4f}, worst {held['worst_cosine']:.4f}"
                + (f", accuracy drop {held['accuracy_drop']:.4f}" if "accuracy_drop" in held else "")
                + " (the figures of record; the table's are on the selection rows).",
                "",
            ]
        final = doc.get("final_round")
        if final:
            lines += [_final_line(final), ""]
        fp = doc.get("float_parent")
        if fp and not final:
            ratio = w["candidate_round"]["latency_ms"]["p50"] / fp["latency_ms"]["p50"]
            lines += [
                f"The float parent, in the same interleaved round: p50 {fp['latency_ms']['p50']:.2f} ms; the winner runs at {ratio:.2f}x of it.",
                "",
            ]
    else:
        lines += ["**No candidate met the budget.**", ""]
    lines += ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in _table(doc)]
    if doc.get("session_search"):
        lines += ["", "Session options for the winner (one interleaved round):", "", "| session | p50 ms | cv |", "|---|---|---|"]
        lines += [f"| {n.replace('|', '/')} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['cv']:.1%} |" for n, r in doc["session_search"].items()]
    if doc["skipped"]:
        lines += ["", "Not searched: " + "; ".join(doc["skipped"]) + "."]
    lines += ["", f"Pareto front (p50 vs mean cosine): {', '.join(doc['pareto_front']) or 'n/a'}. Search took {doc['elapsed_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def _final_line(final: dict) -> str:
    """The figures of record: the winner, quantize_dynamic's defaults and float in one fresh round."""
    w, fp, base = final["winner"]["latency_ms"], final["float_parent"]["latency_ms"], final["baseline"]
    text = (
        f"Figures of record, one fresh interleaved round after the choice: the winner p50 {w['p50']:.2f} ms (CV {w['cv']:.1%}), "
        f"{w['p50'] / fp['p50']:.2f}x the float parent's {fp['p50']:.2f} ms"
    )
    if base.get("measured"):
        same, own = base.get("measured_same_session"), base["measured"]["latency_ms"]["p50"]
        peer = f"in the winner's session: {same['latency_ms']['p50']:.2f} ms; {own:.2f} ms in the profile's" if same else f"{own:.2f} ms"
        text += f"; {final['winner_vs_baseline_p50']:.2f}x the p50 of quantize_dynamic's defaults ({base['label']} {peer})"
    else:
        text += f"; quantize_dynamic's defaults ({base['label']}) did not build: {base.get('error', 'unknown')}"
    return text + ". The table's latencies are the selection rounds'."


def to_html(doc: dict) -> str:
    points = [(r["label"], r["measured"]["latency_ms"]["p50"], r["mean_cosine"]) for r in doc["candidates"] if r.get("measured") and r["id"]]
    points = [p for p in points if p[0] != "float (parent)"]
    svg = scatter_pareto(points, "p50 latency (ms)", "mean cosine vs float", "candidates that meet the budget")
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c.replace('**', ''))}</td>" for c in row) + "</tr>" for row in _table(doc))
    md = escape(to_markdown(doc).split("\n|")[0])
    return (
        "<!doctype html><meta charset='utf-8'><title>edgedeploy tune</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:3px 6px}table{border-collapse:collapse}</style>"
        f"<pre>{md}</pre>{svg}<table><tr>{head}</tr>{body}</table>"
    )


def write(doc: dict, directory: Path) -> dict[str, Path]:
    directory = Path(directory)
    paths = {"json": directory / "tune.json", "md": directory / "tune.md", "html": directory / "tune.html"}
    write_json_atomic(paths["json"], doc)
    write_bytes_atomic(paths["md"], to_markdown(doc).encode())
    write_bytes_atomic(paths["html"], to_html(doc).encode())
    return paths
