"""A run directory as one report document, every number with its provenance: measured (where,
how many runs, what spread), estimated or emulated.

Two steps: ``load_run`` does the I/O (the resolved recipe, the typed stage records, each
artifact's size, parameters and FLOPs), and ``derive`` is a pure function from that to the
report. Column names are the budgets' names without their ``min_``/``max_`` prefix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy.core.artifact import Artifact, utc_now
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput
from edgedeploy.estimate import count
from edgedeploy.quality.fidelity import worst_cosine
from edgedeploy.release import stage_ids as ids
from edgedeploy.release.gate import check
from edgedeploy.release.pipeline import read_record
from edgedeploy.release.recipe import from_document
from edgedeploy.release.records import StageRecord
from edgedeploy.release.spec import RecipeSpec
from edgedeploy.release.stage_ids import SOURCE_MODEL
from edgedeploy.runtimes.inputs import parse_shape


@dataclass
class RunData:
    """Everything the report reads from a run directory."""

    run_dir: Path
    recipe: RecipeSpec
    name: str
    recipe_file: str | None
    records: dict[str, StageRecord]
    facts: dict[str, dict] = field(default_factory=dict)  # artifact path -> {"model_bytes", "parameters", "flops"}


REPORT_SCHEMA_VERSION = 1  # report.json and summary.json


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    rpath = run_dir / "recipe.json"
    if not rpath.is_file():
        raise BadInput(f"{run_dir}: not an edgedeploy run directory (no recipe.json); make one with 'edgedeploy run RECIPE.yaml'")
    try:
        doc = json.loads(rpath.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{rpath}: not readable JSON ({exc})") from None
    records = {}
    # in the order the stages finished: a record is written once, when its stage ends
    for p in sorted((run_dir / "stages").glob("*.json"), key=lambda f: (f.stat().st_mtime_ns, f.name)):
        rec = read_record(p)
        records[rec.id] = rec
    spec = from_document(doc)
    data = RunData(run_dir, spec, doc.get("name") or spec.name or run_dir.name, doc.get("_file"), records)
    shape0 = spec.targets[0].shape
    for rec in records.values():
        result = rec.typed() if rec.status == "ok" and rec.kind in ("export", "quantize") else None
        if result is not None:
            data.facts[result.artifact] = _artifact_facts(run_dir, Path(result.artifact), result.digest, shape0)
    return data


def _artifact_facts(run_dir: Path, artifact: Path, digest: str, shape: str) -> dict:
    manifest = Artifact.load(artifact, verify=False).manifest
    graphs = list(manifest.graph_files.values())
    size = sum(f.size for name, f in manifest.files.items() if any(name.startswith(g) for g in graphs))
    flops = _flops(run_dir, artifact / manifest.model_file, digest, shape) if len(graphs) == 1 else None  # per graph at one shape: not for generation
    return {"model_bytes": size, "parameters": manifest.parameters, "flops": flops}


def _flops(run_dir: Path, model: Path, digest: str, shape: str) -> dict:
    """FLOPs at the first target's shape, cached per artifact digest (counting takes seconds)."""
    cache = run_dir / "cache" / f"flops-{digest[:16]}-{shape.replace('=', '').replace(',', '_')}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    c = count(model, parse_shape(shape))
    out = {
        "gflops": (c["flops_float"] + c["flops_int"]) / 1e9,
        "int_share": c["flops_int"] / max(c["flops_float"] + c["flops_int"], 1),
        "shape": shape,
        "provenance": "estimated: counted from the ONNX graph (2 per multiply-accumulate of MatMul/Gemm/Conv/Attention)",
    }
    write_json_atomic(cache, out)
    return out


# ---- deriving: pure functions of RunData ---------------------------------------------------


def _variant_row(data: RunData, name: str, ref_task: dict | None, ref_ppl: float | None = None) -> dict:
    v = data.recipe.variants[name]
    made_by = str(ids.producer(v.method, v.model, name))
    rec = data.records.get(made_by)
    row = {
        "name": name,
        "model": v.model,
        "method": v.method,
        "gate": v.gate,
        "profile": v.profile,
        "targets": v.targets,  # measured on these targets only (empty: every target)
        "status": rec.status if rec else "not-run",
        "error": rec.error if rec else None,
        "stage": made_by,
        "budgets": v.budgets.set() if v.budgets else {},
    }
    result = rec.typed() if rec and rec.status == "ok" else None
    if result is not None:
        facts = data.facts[result.artifact]
        row.update(
            artifact=result.artifact,
            digest=result.digest,
            model_bytes=facts["model_bytes"],
            size_mb=facts["model_bytes"] / 1e6,
            parameters=facts["parameters"],
            flops=facts["flops"],
        )
        if v.method == "float" and v.model == SOURCE_MODEL:
            row.update(mean_cosine=1.0, worst_cosine=1.0, compression=1.0, fidelity_provenance="the float export is the reference")
        elif v.method == "float":
            row["fidelity_provenance"] = f"a compressed model ({v.model}): judged by its accuracy, not compared output by output"
        else:
            q, f = result.quantization, result.fidelity
            row.update(
                compression=q.compression_ratio,
                nodes_kept_float=q.nodes_kept_float,
                profile=q.profile,
                mean_cosine=f["mean_cosine"],
                worst_cosine=worst_cosine(f),
                top1_agreement=f.get("top1_agreement"),
                fidelity_provenance=f"measured on host CPU at quantize time, {f['samples']} samples of {f['inputs']['source']}",
            )
    ev = data.records.get(str(ids.evaluate(name)))
    r = ev.typed() if ev and ev.status == "ok" else None
    if r is not None:
        row.update(_evaluation(r, ref_task, ref_ppl))
    return row


def _evaluation(r, ref_task: dict | None, ref_ppl: float | None) -> dict:
    """A variant's columns from its eval stage: perplexity for decoders, task accuracy and
    fidelity against the float export otherwise."""
    row: dict = {}
    if r.perplexity:
        row.update(
            perplexity=r.perplexity["perplexity"],
            next_token_agreement=(r.perplexity.get("reference") or {}).get("greedy_next_token_agreement"),
            accuracy_provenance=f"perplexity measured on host CPU over {r.perplexity['scored_tokens']} tokens of {Path(r.data).name} "
            f"(window {r.perplexity['window']}, stride {r.perplexity['stride']})",
        )
        if ref_ppl:
            row["perplexity_increase"] = r.perplexity["perplexity"] / ref_ppl - 1
    elif r.samples:
        if r.note:
            row["accuracy_note"] = r.note
        prov = f"measured on host CPU (onnxruntime CPU EP), {r.samples} rows of {Path(r.data).name}"
        if r.task:
            row.update(accuracy=r.task["accuracy"], macro_f1=r.task["macro_f1"], accuracy_provenance=prov)
            if ref_task:
                row["accuracy_drop"] = ref_task["accuracy"] - r.task["accuracy"]
                row["accuracy_retained"] = r.task["accuracy"] / ref_task["accuracy"] if ref_task["accuracy"] else None
        if r.fidelity:
            f = r.fidelity
            row.update(
                mean_cosine=f["mean_cosine"],
                worst_cosine=worst_cosine(f),
                top1_agreement=f.get("top1_agreement"),
                max_abs_diff=f["max_abs_diff"],
                fidelity_provenance=f"{prov}, against the float export",
            )
    return row


def _relative_to_reference(variants: list[dict], reference: str) -> None:
    """Variants built from a compressed model: size ratio against the source's float export
    (the quantize record's own ratio is against its parent, the compressed float)."""
    ref = next((v for v in variants if v["name"] == reference and v.get("model_bytes")), None)
    for v in variants:
        if ref and v.get("model_bytes") and v["model"] != ref["model"]:
            v["compression"] = ref["model_bytes"] / v["model_bytes"]
            v["compression_provenance"] = f"file size against {reference} (the source's float export)"


def _target_entry(data: RunData, t) -> dict:
    rec = data.records.get(str(ids.bench(t.name)))
    entry = {
        "name": t.name,
        "profile": t.profile,
        "host": t.host,
        "shape": t.shape,
        "max_cv": t.max_cv,
        "budgets": data.recipe.budgets.merged(t.budgets).set(),
        "status": rec.status if rec else "not-run",
        "error": rec.error if rec else None,
        "results": {},
    }
    doc = rec.typed() if rec and rec.status == "ok" else None
    if doc is None:
        return entry
    env = doc.environment
    kind = "EMULATED (timings under an emulator mean nothing for the real device)" if doc.measured == "emulated" else "measured"
    where = (doc.remote or {}).get("host") or "this host"
    entry.update(
        profile=doc.profile,
        environment={k: env.get(k) for k in ("cpu_model", "arch", "cores", "onnxruntime", "providers_used")},
        interleaved=doc.interleaved,
        measured=doc.measured,
        note=doc.note,
    )
    for r in doc.results:
        lat = r["latency_ms"]
        stable = lat["cv"] <= t.max_cv
        why_not = _distrust(r, stable, t, doc.measured == "emulated")
        g = r.get("generation") or {}
        entry["results"][r["variant"]] = {
            "ttft_ms": (g.get("ttft_ms") or {}).get("p50"),
            "decode_tokens_per_s": g.get("decode_tokens_per_s"),
            "prefill_tokens_per_s": g.get("prefill_tokens_per_s"),
            "inter_token_p50_ms": (g.get("inter_token_ms") or {}).get("p50"),
            "p50_ms": lat["p50"],
            "p90_ms": lat["p90"],
            "p99_ms": lat["p99"],
            "mean_ms": lat["mean"],
            "cv": lat["cv"],
            "samples": r["samples"],
            "throughput": r["throughput_per_s"],
            "artifact": r.get("artifact"),
            "stable": stable,
            "trusted": not why_not,
            "distrust": why_not,
            "ratio_to_first": r.get("ratio_to_first"),
            "provenance": f"{kind} on {where} ({env.get('cpu_model')}, {env['threads']['intra_op']} threads), "
            f"{r['samples']} runs, CV {lat['cv']:.1%}" + "".join(f"; {w}" for w in why_not),
        }
    return entry


def _distrust(result: dict, stable: bool, t, emulated: bool) -> list[str]:
    """Why a timing cannot be trusted by a budget: UNSTABLE, THROTTLED, EMULATED (unless allowed)."""
    why = [] if stable else [f"UNSTABLE: CV {result['latency_ms']['cv']:.1%} > {t.max_cv:.0%}"]
    throttled = (result.get("device_state") or {}).get("throttled") or []
    why += [f"THROTTLED: {'; '.join(throttled[:3])}"] if throttled else []
    return why + (["EMULATED: timings under an emulator (allow_emulated: true to gate them)"] if emulated and not t.allow_emulated else [])


def derive(data: RunData, generated: str) -> dict:
    spec = data.recipe
    fname = ids.reference_variant(spec.variants)
    ref_eval = data.records.get(str(ids.evaluate(fname)))
    ref_result = ref_eval.typed() if ref_eval and ref_eval.status == "ok" else None
    ref_task = ref_result.task if ref_result else None
    ref_ppl = (ref_result.perplexity or {}).get("perplexity") if ref_result else None
    variants = [_variant_row(data, name, ref_task, ref_ppl) for name in spec.variants]
    _relative_to_reference(variants, fname)
    targets = [_target_entry(data, t) for t in spec.targets]
    stages = {sid: {"status": r.status, "seconds": r.seconds, "finished": r.finished, "error": r.error} for sid, r in data.records.items()}
    compress = []
    for m, c in spec.compress.items():
        rec = data.records.get(str(ids.compress(m)))
        entry = {"name": m, "method": c.method, "from": c.from_, "status": rec.status if rec else "not-run", "error": rec.error if rec else None}
        r = rec.typed() if rec and rec.status == "ok" else None
        if r is not None:
            entry.update(parameters=r.parameters, accuracy=r.accuracy, seconds=r.seconds)
        compress.append(entry)
    d = spec.data
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "recipe": data.name,
        "recipe_file": data.recipe_file,
        "source": spec.source,
        "generated": generated,
        "run_dir": str(data.run_dir.resolve()),
        "data": {k: getattr(d, k) if d else None for k in ("eval", "calib", "label_column", "max_rows")},
        "reference_variant": fname,
        "reference_accuracy": ref_task["accuracy"] if ref_task else None,
        "variants": variants,
        "compress": compress,
        "targets": targets,
        "stages": stages,
    }
    report["gate"] = check(report)
    return report


def collect(run_dir: Path) -> dict:
    return derive(load_run(run_dir), utc_now())
