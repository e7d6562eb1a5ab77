"""The release gate: every gated variant against every budget of every target.

A budget whose value could not be measured fails; a latency or throughput budget read from a
timing the report does not trust (UNSTABLE: CV over the target's ``max_cv``; THROTTLED: the
device throttled or ran under-clocked; EMULATED, unless the target allows it) passes nothing
and makes the gate exit 4, unless a trustworthy budget already failed (exit 1).
"""

from __future__ import annotations

from edgedeploy.release.budgets import TIMED, column, direction, unit


def _value(field: str, variant: dict, measured: dict | None):
    if field in TIMED:
        return (measured or {}).get(field), bool(measured and measured.get("trusted"))
    return variant.get(field), True


def check(report: dict) -> dict:
    checks = []
    for t in report["targets"]:
        for v in report["variants"]:
            if not v["gate"]:
                continue
            if v.get("targets") and t["name"] not in v["targets"]:
                continue  # an artifact built for another target's device profile
            measured = t["results"].get(v["name"])
            for budget, limit in {**t["budgets"], **(v.get("budgets") or {})}.items():
                field, way, (u, scale) = column(budget), direction(budget), unit(budget)
                value, trusted = _value(field, v, measured)
                c = {"target": t["name"], "variant": v["name"], "budget": budget, "limit": limit, "value": value, "trusted": trusted}
                if value is None:
                    c.update(
                        passed=False, message=f"{v['name']} on {t['name']}: {budget} could not be evaluated ({_why_missing(field, v, measured)})"
                    )
                else:
                    shown_limit = limit * scale  # budgets are written like the values they limit (fractions for accuracy)
                    shown = value * scale
                    ok = shown <= shown_limit if way == "max" else shown >= shown_limit
                    miss = shown - shown_limit if way == "max" else shown_limit - shown
                    c.update(passed=ok, margin=-miss)
                    rel = f" ({abs(miss) / abs(shown_limit):.1%})" if shown_limit else ""
                    verb = "within" if ok else ("over by" if way == "max" else "under by")
                    u = u and " " + u
                    c["message"] = (
                        f"{v['name']} on {t['name']}: {budget} {shown:.4g}{u} vs {shown_limit:.4g}{u}: "
                        f"{'ok, ' + format(abs(miss), '.3g') + ' to spare' if ok else verb + ' ' + format(abs(miss), '.3g') + u + rel}"
                        + ("" if trusted else f" [{'; '.join(measured['distrust'])}: not trusted]")
                    )
                checks.append(c)
    hard_fail = [c for c in checks if not c["passed"] and (c["trusted"] or c["value"] is None) and not _is_unmeasured_timing(c)]
    untrusted = [c for c in checks if not c["trusted"] or _is_unmeasured_timing(c)]
    exit_code = 1 if hard_fail else 4 if untrusted else 0
    return {
        "passed": exit_code == 0,
        "exit_code": exit_code,
        "checks": checks,
        "failed": [c["message"] for c in hard_fail],
        "untrusted": [c["message"] for c in untrusted],
    }


def _is_unmeasured_timing(c: dict) -> bool:
    return c["value"] is None and column(c["budget"]) in TIMED


def _why_missing(field, variant, measured) -> str:
    if variant.get("status") not in ("ok", "cached"):
        return f"the variant did not build: {variant.get('error') or variant.get('status')}"
    if field in TIMED:
        if not measured:
            return "no benchmark for this target"
        return "too few samples for p90 (needs 64)" if field == "p90_ms" else "not measured"
    return "no labeled eval data" if "accuracy" in field else "not measured"
