"""Gather a run directory (resolved recipe + stage records) into one report document, every
number with its provenance: measured (where, how many runs, what spread), estimated or emulated."""

from __future__ import annotations

import json
from pathlib import Path

from edgedeploy.core.errors import BadInput


def load_run(run_dir: Path) -> tuple[dict, dict]:
    run_dir = Path(run_dir)
    rpath = run_dir / "recipe.json"
    if not rpath.is_file():
        raise BadInput(f"{run_dir}: not an edgedeploy run directory (no recipe.json); make one with 'edgedeploy run RECIPE.yaml'")
    records = {}
    for p in sorted((run_dir / "stages").glob("*.json")):
        rec = json.loads(p.read_text())
        records[rec["id"]] = rec
    return json.loads(rpath.read_text()), records


def _ok(rec) -> bool:
    return bool(rec) and rec.get("status") == "ok"


def _model_bytes(artifact: Path) -> tuple[int, int | None]:
    """Bytes of the model file(s) (model.onnx + external data) and the parameter count."""
    manifest = json.loads((artifact / "edgedeploy.json").read_text())
    model = manifest.get("model_file", "model.onnx")
    return sum(f["size"] for name, f in manifest["files"].items() if name.startswith(model)), manifest.get("parameters")


def _flops(run_dir: Path, artifact: str, digest: str, shape: str) -> dict | None:
    """FLOPs at the first target's shape, cached per artifact digest (counting takes seconds)."""
    from edgedeploy.core.atomic import write_json_atomic
    from edgedeploy.estimate import count
    from edgedeploy.runtimes.inputs import parse_shape

    cache = run_dir / "cache" / f"flops-{digest[:16]}-{shape.replace('=', '').replace(',', '_')}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    c = count(Path(artifact) / "model.onnx", parse_shape(shape))
    out = {"gflops": (c["flops_float"] + c["flops_int"]) / 1e9, "int_share": c["flops_int"] / max(c["flops_float"] + c["flops_int"], 1),
           "shape": shape, "provenance": "estimated: counted from the ONNX graph (2 per multiply-accumulate of MatMul/Gemm/Conv/Attention)"}
    write_json_atomic(cache, out)
    return out


def _relative_to_reference(variants: list[dict], reference: str) -> None:
    """Variants built from a compressed model: size ratio against the source's float export
    (the quantize record's own ratio is against its parent, the compressed float)."""
    ref = next((v for v in variants if v["name"] == reference and v.get("model_bytes")), None)
    for v in variants:
        if ref and v.get("model_bytes") and v["model"] != ref["model"]:
            v["compression_ratio"] = ref["model_bytes"] / v["model_bytes"]
            v["compression_provenance"] = f"file size against {reference} (the source's float export)"


def collect(run_dir: Path) -> dict:
    from edgedeploy.core.artifact import utc_now
    from edgedeploy.release.recipe import SOURCE_MODEL, producer, reference_variant

    run_dir = Path(run_dir)
    recipe, records = load_run(run_dir)
    fname = reference_variant(recipe)
    ref_eval = records.get(f"eval:{fname}")
    ref_task = ref_eval["result"].get("task") if _ok(ref_eval) else None
    data = recipe.get("data", {})
    shape0 = recipe["targets"][0]["shape"]
    variants = []
    for name, v in recipe["variants"].items():
        made_by = producer(recipe, name)
        rec = records.get(made_by) or {"status": "not-run"}
        row = {"name": name, "model": v.get("model", SOURCE_MODEL), "method": v["method"], "gate": v.get("gate", True), "status": rec["status"],
               "error": rec.get("error"), "stage": made_by}
        if _ok(rec):
            res = rec["result"]
            size, params = _model_bytes(Path(res["artifact"]))
            row.update(artifact=res["artifact"], digest=res["digest"], model_bytes=size, model_mb=size / 1e6, parameters=params,
                       flops=_flops(run_dir, res["artifact"], res["digest"], shape0))
            if v["method"] == "float" and row["model"] == SOURCE_MODEL:
                row.update(mean_cosine=1.0, compression_ratio=1.0)
                row["fidelity_provenance"] = "the float export is the reference"
            elif v["method"] == "float":
                row["fidelity_provenance"] = f"a compressed model ({row['model']}): judged by its accuracy, not compared output by output"
            else:
                q = res["quantization"]
                row.update(compression_ratio=q["compression_ratio"], nodes_kept_float=q["nodes_kept_float"], profile=q["profile"])
                f = res["fidelity"]
                row.update(mean_cosine=f["mean_cosine"], min_cosine=f["min_cosine"], top1_agreement=f.get("top1_agreement"),
                           fidelity_provenance=f"measured on host CPU at quantize time, {f['samples']} samples of {f['inputs']['source']}")
        ev = records.get(f"eval:{name}")
        if _ok(ev) and ev["result"].get("samples"):
            r = ev["result"]
            if r.get("note"):
                row["accuracy_note"] = r["note"]
            prov = f"measured on host CPU (onnxruntime CPU EP), {r['samples']} rows of {Path(r['data']).name}"
            if r.get("task"):
                row.update(accuracy=r["task"]["accuracy"], macro_f1=r["task"]["macro_f1"], accuracy_provenance=prov)
                if ref_task:
                    row["accuracy_drop"] = ref_task["accuracy"] - r["task"]["accuracy"]
                    row["accuracy_retained"] = r["task"]["accuracy"] / ref_task["accuracy"] if ref_task["accuracy"] else None
            if r.get("fidelity"):
                f = r["fidelity"]
                row.update(mean_cosine=f["mean_cosine"], min_cosine=f["min_cosine"], top1_agreement=f.get("top1_agreement"),
                           max_abs_diff=f["max_abs_diff"], fidelity_provenance=f"{prov}, against the float export")
        variants.append(row)
    _relative_to_reference(variants, fname)
    targets = []
    for t in recipe["targets"]:
        rec = records.get(f"bench:{t['name']}") or {"status": "not-run"}
        budgets = {**recipe.get("budgets", {}), **t.get("budgets", {})}
        entry = {"name": t["name"], "profile": t["profile"], "host": t.get("host"), "shape": t["shape"], "max_cv": t["max_cv"],
                 "budgets": budgets, "status": rec["status"], "error": rec.get("error"), "results": {}}
        if _ok(rec):
            doc = rec["result"]
            env = doc["environment"]
            kind = "EMULATED (timings under an emulator mean nothing for the real device)" if doc.get("measured") == "emulated" else "measured"
            where = doc.get("remote", {}).get("host") or "this host"
            entry.update(profile=doc["profile"], environment={k: env.get(k) for k in ("cpu_model", "arch", "cores", "onnxruntime", "providers_used")},
                         interleaved=doc.get("interleaved", False), measured=doc.get("measured", "measured"), note=doc.get("note"))
            for r in doc["results"]:
                lat = r["latency_ms"]
                stable = lat["cv"] <= t["max_cv"]
                entry["results"][r["variant"]] = {
                    "p50_ms": lat["p50"], "p90_ms": lat["p90"], "p99_ms": lat["p99"], "mean_ms": lat["mean"], "cv": lat["cv"],
                    "samples": r["samples"], "throughput_per_s": r["throughput_per_s"], "stable": stable, "ratio_to_first": r.get("ratio_to_first"),
                    "provenance": f"{kind} on {where} ({env.get('cpu_model')}, {env['threads']['intra_op']} threads), "
                                  f"{r['samples']} runs, CV {lat['cv']:.1%}" + ("" if stable else f" > {t['max_cv']:.0%}: UNSTABLE"),
                }
        targets.append(entry)
    stages = {sid: {k: rec.get(k) for k in ("status", "seconds", "finished", "error")} for sid, rec in records.items()}
    compress = []
    for m, c in (recipe.get("compress") or {}).items():
        rec = records.get(f"compress:{m}") or {"status": "not-run"}
        entry = {"name": m, "method": c["method"], "from": c.get("from", SOURCE_MODEL), "status": rec["status"], "error": rec.get("error")}
        if _ok(rec):
            r = rec["result"]
            entry.update(parameters=r["parameters"], accuracy=r.get("accuracy"), seconds=r["seconds"])
        compress.append(entry)
    report = {"recipe": recipe["name"], "recipe_file": recipe.get("_file"), "source": recipe["source"], "generated": utc_now(),
              "run_dir": str(run_dir.resolve()), "data": {k: data.get(k) for k in ("eval", "calib", "label_column", "limit")},
              "reference_variant": fname, "reference_accuracy": ref_task["accuracy"] if ref_task else None,
              "variants": variants, "compress": compress, "targets": targets, "stages": stages}
    from edgedeploy.release.gate import check

    report["gate"] = check(report)
    return report
