"""report.json, results.csv, report.md and a self-contained report.html from one report document."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from pathlib import Path

from edgedeploy.core import plots
from edgedeploy.core.atomic import write_bytes_atomic

# the columns a budget limits carry the budget's name without min_/max_ (size_mb, compression, mean_cosine, worst_cosine, ...)
CSV_FIELDS = (
    "target",
    "variant",
    "model",
    "method",
    "status",
    "size_mb",
    "compression",
    "parameters",
    "gflops",
    "accuracy",
    "accuracy_drop",
    "accuracy_retained",
    "macro_f1",
    "mean_cosine",
    "worst_cosine",
    "top1_agreement",
    "perplexity",
    "perplexity_increase",
    "ttft_ms",
    "decode_tokens_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "cv",
    "samples",
    "throughput",
    "stable",
    "latency_provenance",
    "accuracy_provenance",
)
HTML_FIELDS = CSV_FIELDS[: CSV_FIELDS.index("stable")]  # the provenance columns go to their own list
HEADERS = {
    "size_mb": "size MB",
    "compression": "smaller",
    "gflops": "GFLOP",
    "accuracy_drop": "accuracy drop",
    "accuracy_retained": "accuracy kept",
    "macro_f1": "macro-F1",
    "mean_cosine": "mean cos",
    "worst_cosine": "worst cos",
    "top1_agreement": "top-1 agree",
    "perplexity": "perplexity",
    "perplexity_increase": "ppl vs float",
    "ttft_ms": "TTFT ms",
    "decode_tokens_per_s": "decode tok/s",
    "p50_ms": "p50 ms",
    "p90_ms": "p90 ms",
    "p99_ms": "p99 ms",
    "cv": "CV",
    "throughput": "samples/s",
}


def human(v, spec=".4g") -> str:
    """A table cell: thousands separators for counts, no exponents."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and spec == ".4g":
        if float(v).is_integer() and abs(v) >= 1000:
            return f"{int(v):,}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
    return _fmt(v, spec, "")


def _fmt(v, spec=".4g", none="n/a"):
    if v is None:
        return none
    if isinstance(v, bool):
        return "yes" if v else "no"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


GATE_HEADERS = ["variant", "target", "budget", "limit", "value", "margin", "result"]


def gate_rows(report: dict) -> list[list[str]]:
    """Every gate check with its margin, passed ones included (a positive margin is room to spare)."""
    out = []
    for c in report["gate"]["checks"]:
        result = "passed" if c["passed"] else ("not measured" if c["value"] is None else "MISSED")
        if c["value"] is not None and not c["trusted"]:
            result += " (not trusted)"
        out.append([c["variant"], c["target"], c["budget"], _fmt(c["limit"]), _fmt(c["value"]), _fmt(c.get("margin"), "+.3g", "-"), result])
    return out


def rows(report: dict) -> list[dict]:
    out = []
    targets = report["targets"] or [{"name": "-", "results": {}}]
    for t in targets:
        for v in report["variants"]:
            m = t["results"].get(v["name"], {})
            out.append(
                {
                    "target": t["name"],
                    "variant": v["name"],
                    "model": v.get("model", "source"),
                    "method": v["method"],
                    "status": v["status"],
                    "size_mb": v.get("size_mb"),
                    "compression": v.get("compression"),
                    "parameters": v.get("parameters"),
                    "gflops": (v.get("flops") or {}).get("gflops"),
                    "accuracy": v.get("accuracy"),
                    "accuracy_drop": v.get("accuracy_drop"),
                    "accuracy_retained": v.get("accuracy_retained"),
                    "macro_f1": v.get("macro_f1"),
                    "mean_cosine": v.get("mean_cosine"),
                    "worst_cosine": v.get("worst_cosine"),
                    "top1_agreement": v.get("top1_agreement"),
                    "perplexity": v.get("perplexity"),
                    "perplexity_increase": v.get("perplexity_increase"),
                    "ttft_ms": m.get("ttft_ms"),
                    "decode_tokens_per_s": m.get("decode_tokens_per_s"),
                    **{k: m.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "cv", "samples", "throughput", "stable")},
                    "latency_provenance": m.get("provenance"),
                    "accuracy_provenance": v.get("accuracy_provenance"),
                }
            )
    return out


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows(report):
        w.writerow({k: "" if r[k] is None else r[k] for k in CSV_FIELDS})
    return buf.getvalue()


def _quality(report: dict) -> tuple[str, str]:
    """Accuracy when there is labeled data, else fidelity (mean cosine to the float export)."""
    if any(v.get("accuracy") is not None for v in report["variants"]):
        return "accuracy", "task accuracy"
    return "mean_cosine", "mean cosine to float"


def figures(report: dict) -> list[tuple[str, str]]:
    key, label = _quality(report)
    figs = []
    for t in report["targets"]:
        pts = [
            (v["name"], t["results"][v["name"]]["p50_ms"], v[key]) for v in report["variants"] if v["name"] in t["results"] and v.get(key) is not None
        ]
        figs.append(
            (f"{label} vs latency on {t['name']}", plots.scatter_pareto(pts, "p50 latency (ms)", label, f"{label} vs p50 latency: {t['name']}"))
        )
    for t in report["targets"]:  # decoders: the trade-off users pick from
        pts = [
            (v["name"], v["perplexity"], t["results"][v["name"]]["decode_tokens_per_s"])
            for v in report["variants"]
            if v.get("perplexity") is not None and (t["results"].get(v["name"]) or {}).get("decode_tokens_per_s")
        ]
        if pts:
            title = f"decode tokens/s vs perplexity: {t['name']}"
            figs.append((f"decode tokens/s vs perplexity on {t['name']}", plots.scatter_pareto(pts, "perplexity", "decode tokens/s", title)))
    names = [v["name"] for v in report["variants"]]
    figs.append(("model size", plots.bars(names, {"model MB": [v.get("size_mb") for v in report["variants"]]}, "MB", "model size per variant")))
    for t in report["targets"]:
        series = {p: [t["results"].get(n, {}).get(f"{p}_ms") for n in names] for p in ("p50", "p90", "p99")}
        figs.append((f"latency percentiles on {t['name']}", plots.bars(names, series, "ms", f"latency percentiles: {t['name']} ({t['profile']})")))
    return figs


def _compress_md(report: dict) -> list[str]:
    """The PyTorch-side steps: parameters and accuracy (PyTorch, on the eval data) before and after each."""
    steps = report.get("compress") or []
    if not steps:
        return []
    out = [
        "",
        "## Compression steps (PyTorch)",
        "",
        "| step | method | from | status | params before | params after | fewer | accuracy before | accuracy after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in steps:
        p, a = c.get("parameters") or {}, c.get("accuracy") or {}
        before, after = p.get("before"), p.get("after")
        acc_before, acc_after = a.get("before"), a.get("after")
        out.append(
            f"| {c['name']} | {c['method']} | {c['from']} | {c['status']} | {_fmt(before, ',')} | {_fmt(after, ',')} | "
            f"{_fmt(p.get('reduction'), '.1%')} | {_fmt(acc_before, '.4f')} | {_fmt(acc_after, '.4f')} |"
        )
        if c.get("error"):
            out.append(f"\nError in {c['name']}: {c['error']}\n")
    return out


def to_markdown(report: dict) -> str:
    g = report["gate"]
    lines = [
        f"# edgedeploy report: {report['recipe']}",
        "",
        f"Source `{report['source']}`, generated {report['generated']}, run directory `{report['run_dir']}`.",
        "",
        f"**Gate: {'PASSED' if g['passed'] else 'FAILED (exit ' + str(g['exit_code']) + ')'}**",
        "",
    ]
    lines += [f"- MISSED: {m}" for m in g["failed"]] + [f"- NOT TRUSTED: {m}" for m in g["untrusted"]]
    if g["checks"]:
        lines += ["", "## Gate", "", "| " + " | ".join(GATE_HEADERS) + " |", "|" + "---|" * len(GATE_HEADERS)]
        lines += ["| " + " | ".join(r) + " |" for r in gate_rows(report)]
    lines += _compress_md(report)
    lines += [
        "",
        "## Variants",
        "",
        "| variant | model | method | status | size MB | smaller | params | GFLOP | accuracy | drop (pts) | mean cos | top-1 agree |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in report["variants"]:
        drop = None if v.get("accuracy_drop") is None else v["accuracy_drop"] * 100
        lines.append(
            f"| {v['name']} | {v.get('model', 'source')} | {v['method']} | {v['status']} | {_fmt(v.get('size_mb'), '.1f')} | {_fmt(v.get('compression'), '.2f')}x | {_fmt(v.get('parameters'), ',')} | "
            f"{_fmt((v.get('flops') or {}).get('gflops'), '.2f')} | {_fmt(v.get('accuracy'), '.4f')} | {_fmt(drop, '+.2f')} | "
            f"{_fmt(v.get('mean_cosine'), '.4f')} | {_fmt(v.get('top1_agreement'), '.1%')} |"
        )
    if any(v.get("perplexity") is not None for v in report["variants"]):
        lines += [
            "",
            "## Decoders",
            "",
            "| variant | size MB | smaller | perplexity | vs float | next-token agreement |",
            "|---|---|---|---|---|---|",
        ]
        for v in report["variants"]:
            inc = v.get("perplexity_increase")
            lines.append(
                f"| {v['name']} | {_fmt(v.get('size_mb'), '.2f')} | {_fmt(v.get('compression'), '.2f')}x | {_fmt(v.get('perplexity'), '.2f')} | "
                f"{_fmt(None if inc is None else inc * 100, '+.2f')} % | {_fmt(v.get('next_token_agreement'), '.1%')} |"
            )
    for t in report["targets"]:
        lines += _target_md(t)
    lines += ["", "## Provenance", ""]
    for v in report["variants"]:
        for k in ("accuracy_provenance", "fidelity_provenance"):
            if v.get(k):
                lines.append(f"- {v['name']} {k.split('_')[0]}: {v[k]}")
        if v.get("flops"):
            lines.append(f"- {v['name']} FLOPs: {v['flops']['provenance']} at {v['flops']['shape']}")
    for t in report["targets"]:
        for n, m in t["results"].items():
            lines.append(f"- {n} latency on {t['name']}: {m['provenance']}")
    lines += ["", "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {sid} | {s['status']} | {_fmt(s.get('seconds'), '.1f', '-')} |" for sid, s in report["stages"].items()]
    return "\n".join(lines) + "\n"


def _target_md(t: dict) -> list[str]:
    """One target's section: its environment, latency table, generation rates and budgets."""
    lines = ["", f"## Target {t['name']} (profile {t['profile']}{', host ' + t['host'] if t.get('host') else ''}): {t['status']}", ""]
    if t.get("error"):
        lines.append(f"Error: {t['error']}")
    if t.get("environment"):
        e = t["environment"]
        lines.append(
            f"{t.get('measured', 'measured')}: {e['cpu_model']} ({e['arch']}, {e['cores']} cores), onnxruntime {e['onnxruntime']}"
            + (", variants interleaved" if t.get("interleaved") else "")
        )
    lines += ["", "| variant | p50 ms | p90 ms | p99 ms | CV | runs | samples/s | stable |", "|---|---|---|---|---|---|---|---|"]
    for n, m in t["results"].items():
        lines.append(
            f"| {n} | {_fmt(m['p50_ms'], '.2f')} | {_fmt(m['p90_ms'], '.2f')} | {_fmt(m['p99_ms'], '.2f')} | {m['cv']:.1%} | "
            f"{m['samples']} | {_fmt(m['throughput'], '.1f')} | {'yes' if m['trusted'] else m['distrust'][0].split(':')[0]} |"
        )
    gen = {n: m for n, m in t["results"].items() if m.get("decode_tokens_per_s")}
    if gen:
        lines += ["", "| variant | TTFT p50 ms | prefill tokens/s | decode tokens/s | inter-token p50 ms |", "|---|---|---|---|---|"]
        lines += [
            f"| {n} | {_fmt(m['ttft_ms'], '.2f')} | {_fmt(m['prefill_tokens_per_s'], '.0f')} | {_fmt(m['decode_tokens_per_s'], '.1f')} | "
            f"{_fmt(m['inter_token_p50_ms'], '.3f')} |"
            for n, m in gen.items()
        ]
    if t["budgets"]:
        lines += ["", "Budgets: " + ", ".join(f"{k} {v}" for k, v in t["budgets"].items())]
    return lines


CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}"
    "table{border-collapse:collapse;margin:1rem 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37;font-weight:bold}.fail{color:#c62828;font-weight:bold}"
    ".warn{color:#b26a00}.fig{display:inline-block;margin:0.5rem}small{color:#666}li{margin:2px 0}"
)


def to_html(report: dict) -> str:
    g = report["gate"]
    h = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>edgedeploy report: {escape(report['recipe'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>edgedeploy report: {escape(report['recipe'])}</h1>",
        f"<p>Source <code>{escape(report['source'])}</code>, generated {escape(report['generated'])}.</p>",
        f"<p class='{'pass' if g['passed'] else 'fail'}'>Gate: {'PASSED' if g['passed'] else 'FAILED (exit ' + str(g['exit_code']) + ')'}</p>",
    ]
    if g["failed"] or g["untrusted"]:
        h.append(
            "<ul>"
            + "".join(f"<li class='fail'>MISSED: {escape(m)}</li>" for m in g["failed"])
            + "".join(f"<li class='warn'>NOT TRUSTED: {escape(m)}</li>" for m in g["untrusted"])
            + "</ul>"
        )
    if g["checks"]:
        h.append("<h2>Gate</h2><table><tr>" + "".join(f"<th>{x}</th>" for x in GATE_HEADERS) + "</tr>")
        for r in gate_rows(report):
            cls = "pass" if r[-1] == "passed" else "fail"
            h.append("<tr>" + "".join(f"<td>{escape(x)}</td>" for x in r[:-1]) + f"<td class='{cls}'>{escape(r[-1])}</td></tr>")
        h.append("</table>")
    h.append("<h2>Plots</h2>")
    h += [f"<div class='fig'>{svg}</div>" for _, svg in figures(report)]
    steps = _compress_md(report)
    if steps:
        h.append("<h2>Compression steps (PyTorch)</h2><table>")
        for i, line in enumerate(x for x in steps[3:] if x.startswith("|") and not x.startswith("|---")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            tag = "th" if i == 0 else "td"
            h.append("<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>")
        h.append("</table>")
    h.append(
        "<h2>Results</h2><div style='overflow-x:auto'><table><tr>" + "".join(f"<th>{escape(HEADERS.get(f, f))}</th>" for f in HTML_FIELDS) + "</tr>"
    )
    for r in rows(report):
        cells = []
        for f in HTML_FIELDS:
            v = r[f]
            spec = ".1%" if f in ("cv", "top1_agreement") else ".4g"
            cells.append(f"<td>{escape(human(v, spec))}</td>")
        h.append("<tr>" + "".join(cells) + "</tr>")
    h.append("</table></div>")
    md = to_markdown(report)
    prov = md[md.index("## Provenance") : md.index("## Stages")].splitlines()[2:]
    h.append("<h2>Provenance</h2><ul>" + "".join(f"<li>{escape(p[2:])}</li>" for p in prov if p.startswith("- ")) + "</ul>")
    h.append(
        "<h2>Stages</h2><table><tr><th>stage</th><th>status</th><th>seconds</th></tr>"
        + "".join(
            f"<tr><td>{escape(s)}</td><td>{escape(v['status'])}</td><td>{_fmt(v.get('seconds'), '.1f', '-')}</td></tr>"
            for s, v in report["stages"].items()
        )
        + "</table>"
    )
    h.append("<p><small>Self-contained: no scripts, no external resources.</small></p></body></html>")
    return "\n".join(h)


def write_all(report: dict, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    files = {
        "report.json": json.dumps(report, indent=2, default=str),
        "results.csv": to_csv(report),
        "report.md": to_markdown(report),
        "report.html": to_html(report),
    }
    paths = {}
    for name, text in files.items():
        write_bytes_atomic(out_dir / name, text.encode("utf-8"))
        paths[name] = out_dir / name
    return paths
