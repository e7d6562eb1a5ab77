"""The stages of a release recipe: compress (one per PyTorch-side step, when the recipe has
any) -> export (the source, and each compressed model a variant uses) -> quantize (one per
variant) -> eval (one per variant, when the recipe has eval data) -> bench (one per target,
every variant interleaved). Each stage says what its result depends on (the cache key) and
how to produce it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from edgedeploy.release.pipeline import Stage
from edgedeploy.release.recipe import SOURCE_MODEL, Recipe, export_stage, producer, reference_variant

ARTIFACTS = "artifacts"
MODELS = "models"


def file_sha256(path: str) -> str:
    st = Path(path).stat()  # keyed by size and mtime too: a compress stage rewrites its files within a run
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    from edgedeploy.core.artifact import sha256_file

    return sha256_file(Path(path))


def tree_fingerprint(root: Path) -> list:
    """(relative path, sha256) of every file under a source model directory or file."""
    root = Path(root)
    if root.is_file():
        return [(root.name, file_sha256(str(root)))]
    return [(str(p.relative_to(root)), file_sha256(str(p))) for p in sorted(root.rglob("*")) if p.is_file()]


def float_name(recipe: Recipe) -> str:
    return reference_variant(recipe.doc)


def resolve_profile(name: str | None) -> str | None:
    if name == "auto":
        from edgedeploy.device.doctor import diagnose

        return diagnose()["closest_profile"]
    return name


def _artifact_intact(result: dict) -> bool:
    from edgedeploy.core.artifact import Artifact
    from edgedeploy.core.errors import EdgeDeployError

    try:
        return Artifact.load(result["artifact"]).digest == result["digest"]
    except EdgeDeployError:
        return False


def _data_key(recipe: Recipe, *keys) -> dict:
    d = recipe.data
    out = {k: d.get(k) for k in ("text_column", "text_pair_column", "label_column", "limit")}
    for k in keys:
        out[k] = file_sha256(d[k]) if d.get(k) else None
    return out


def build(recipe: Recipe, run_dir: Path) -> list[Stage]:
    arts = Path(run_dir) / ARTIFACTS
    fname = float_name(recipe)
    data = recipe.data
    compress = recipe.doc.get("compress", {})
    used = {v["model"] for v in recipe.variants().values()} - {SOURCE_MODEL}
    needed = set()  # compressed models that are used, and the steps they are made from
    for m in used:
        while m != SOURCE_MODEL and m not in needed:
            needed.add(m)
            m = compress[m]["from"]
    stages = [_compress_stage(recipe, m, Path(run_dir) / MODELS / m) for m in compress if m in needed]
    stages.append(_export_stage(recipe, SOURCE_MODEL, arts / fname))
    for m in compress:
        if m in used:
            float_variant = next((n for n, v in recipe.variants().items() if v["model"] == m and v["method"] == "float"), m)
            stages.append(_export_stage(recipe, m, arts / float_variant))
    variant_stage = {}
    for name, v in recipe.variants().items():
        if v["method"] != "float":
            stages.append(_quantize_stage(recipe, name, v, arts / name))
        variant_stage[name] = producer(recipe.doc, name)
    if data.get("eval"):
        for name, sid in variant_stage.items():
            stages.append(_eval_stage(recipe, name, sid))
        if fname not in variant_stage:  # the float reference is always evaluated, for accuracy drops
            stages.append(_eval_stage(recipe, fname, "export"))
    for t in recipe.targets():
        stages.append(_bench_stage(t, variant_stage))
    return stages


def _compress_stage(recipe: Recipe, name: str, out: Path) -> Stage:
    """A PyTorch-side step (prune or distill) from the source or an earlier step, into ``RUN_DIR/models/NAME``."""
    c = recipe.doc["compress"][name]
    parent = c["from"]
    settings = {k: v for k, v in c.items() if k not in ("from", "data")}
    d = recipe.data
    deps = [] if parent == SOURCE_MODEL else [f"compress:{parent}"]

    def parent_path(res) -> str:
        return recipe.doc["source"] if parent == SOURCE_MODEL else res[f"compress:{parent}"]["model"]

    def inputs(res):
        from edgedeploy.core.sources import resolve

        files = tree_fingerprint(resolve(recipe.doc["source"]).path) if parent == SOURCE_MODEL else res[f"compress:{parent}"]["files"]
        return {"parent": files, "settings": settings, "train": file_sha256(c["data"]) if c.get("data") else None,
                "eval": _data_key(recipe, "eval") if recipe.labeled() else None}

    def run(res):
        from edgedeploy.compress import DistillOptions, PruneOptions, distill, prune

        common = {"eval": d.get("eval") if recipe.labeled() else None, "text_column": d.get("text_column", "text"),
                  "label_column": d.get("label_column") or "label"}
        if c["method"] == "prune":
            rec = prune(parent_path(res), out, PruneOptions(**{k: v for k, v in c.items() if k not in ("method", "from")}, **common), force=True)
        else:
            opts = {k: v for k, v in c.items() if k not in ("method", "from")}
            # an interrupted run resumes the distillation from RUN_DIR/models/NAME.partial
            rec = distill(parent_path(res), out, DistillOptions(**opts, **common), force=True, resume="if-compatible")
        return {"model": str(out), "files": tree_fingerprint(out), "method": c["method"], "from": parent,
                "parameters": rec["parameters"], "accuracy": rec.get("accuracy"), "seconds": rec["seconds"]}

    def intact(result):
        try:
            return tree_fingerprint(Path(result["model"])) == [tuple(x) for x in result["files"]]
        except OSError:
            return False

    return Stage(f"compress:{name}", "compress", inputs, run, deps=deps, intact=intact)


def _export_stage(recipe: Recipe, model: str, out: Path) -> Stage:
    ex = recipe.doc.get("export", {})
    sid = export_stage(model)
    deps = [] if model == SOURCE_MODEL else [f"compress:{model}"]

    def source(res) -> str:
        return recipe.doc["source"] if model == SOURCE_MODEL else res[f"compress:{model}"]["model"]

    def inputs(res):
        from edgedeploy.core.sources import resolve

        sample = recipe.data.get("eval")
        files = tree_fingerprint(resolve(recipe.doc["source"]).path) if model == SOURCE_MODEL else res[f"compress:{model}"]["files"]
        return {"source": recipe.doc["source"] if model == SOURCE_MODEL else model, "files": files, "export": ex,
                "sample_data": file_sha256(sample) if sample else None}

    def run(res):
        from edgedeploy.export import export

        art = export(source(res), out, task=ex.get("task"), opset=ex.get("opset"), optimize=ex.get("optimize", False),
                     atol=ex.get("atol"), rtol=ex.get("rtol"), sample_data=Path(recipe.data["eval"]) if recipe.data.get("eval") else None,
                     text_column=recipe.data.get("text_column", "text"), force=True)
        return {"artifact": str(art.path), "digest": art.digest, "validation": {k: art.manifest["validation"].get(k) for k in ("passed", "max_abs_diff", "inputs_from")}}

    return Stage(sid, "export", inputs, run, deps=deps, intact=_artifact_intact)


QUANT_KEYS = ("weight_type", "activation_type", "per_channel", "reduce_range", "format", "block_size", "symmetric",
              "accuracy_level", "embeddings", "sensitive_8bit")


def _quantize_stage(recipe: Recipe, name: str, v: dict, out: Path) -> Stage:
    settings = {k: val for k, val in v.items() if k != "gate"}
    # calibration text feeds static calibration, int4's sensitivity ranking and accuracy-aware searches
    uses_calib = v["method"] in ("static", "int4") or any(v.get(k) is not None for k in ("min_cosine", "min_worst_cosine", "max_drop"))
    calib = recipe.data.get("calib") if uses_calib else None

    parent = export_stage(v["model"])

    def inputs(res):
        return {"parent": res[parent]["digest"], "settings": settings, "profile": resolve_profile(v.get("profile")),
                "data": _data_key(recipe, "eval", *(["calib"] if calib else []))}

    def run(res):
        from edgedeploy.quantize import quantize

        d = recipe.data
        overrides = {k: v.get(k) for k in QUANT_KEYS} | {"calibration_method": v.get("calib_method")}
        art = quantize(res[parent]["artifact"], out, v["method"], profile=resolve_profile(v.get("profile")), overrides=overrides,
                       calib_data=Path(calib) if calib else None, calib_samples=v.get("calib_samples", 128),
                       text_column=d.get("text_column", "text"), eval_data=Path(d["eval"]) if d.get("eval") else None,
                       eval_samples=v.get("eval_samples", 64), exclude=tuple(v.get("exclude", ())), force=True,
                       min_cosine=v.get("min_cosine"), min_worst_cosine=v.get("min_worst_cosine"), max_drop=v.get("max_drop"),
                       label_column=d.get("label_column") or "label")
        q = art.manifest["quantization"]
        return {"artifact": str(art.path), "digest": art.digest, "fidelity": art.manifest["fidelity"],
                "quantization": {"method": q["method"], "profile": q["profile"], "compression_ratio": q["compression_ratio"],
                                 "nodes_kept_float": len(q["nodes_kept_float"]), "warning": q.get("warning")}}

    return Stage(f"quantize:{name}", "quantize", inputs, run, deps=[parent], intact=_artifact_intact)


def _eval_stage(recipe: Recipe, name: str, producer: str) -> Stage:
    d = recipe.data
    is_ref = producer.split(":")[0] == "export"  # a float export is measured on its own
    ref = export_stage(recipe.variants()[name]["model"]) if name in recipe.variants() else "export"  # fidelity against the model's float export

    def inputs(res):
        return {"artifact": res[producer]["digest"], "reference": None if is_ref else res[ref]["digest"], "data": _data_key(recipe, "eval")}

    def run(res):
        from edgedeploy.core.artifact import Artifact
        from edgedeploy.quality.evaluate import evaluate

        art = Artifact.load(res[producer]["artifact"])
        # a model without a classification head (a sentence encoder) gets fidelity only
        classifier = len(art.manifest["outputs"][0]["shape"]) == 2
        label_column = d.get("label_column") if classifier else None
        if is_ref and label_column is None:
            return {"variant": name, "samples": None, "task": None, "note": "not a classifier: accuracy does not apply, fidelity only"}
        out = evaluate(art.path, Path(d["eval"]), reference=None if is_ref else res[ref]["artifact"],
                       text_column=d.get("text_column", "text"), label_column=label_column, pair_column=d.get("text_pair_column"),
                       limit=d.get("limit"))
        out["variant"] = name
        if not classifier:
            out["note"] = "not a classifier: accuracy does not apply, fidelity only"
        return out

    deps = [producer] if is_ref else [ref, producer]
    return Stage(f"eval:{name}", "eval", inputs, run, deps=deps)


def _bench_stage(t: dict, variant_stage: dict) -> Stage:
    settings = {k: val for k, val in t.items() if k not in ("budgets", "max_cv", "note")}

    def available(res):
        return [(n, res[s]) for n, s in variant_stage.items() if s in res]

    def inputs(res):
        from edgedeploy.runtimes.environment import cpuinfo

        where = {"host": t["host"]} if t.get("host") else {"local_cpu": cpuinfo()["cpu_model"]}
        return {"variants": [(n, r["digest"]) for n, r in available(res)], "settings": settings, "profile": resolve_profile(t["profile"]), **where}

    def run(res):
        from edgedeploy.bench import bench
        from edgedeploy.core.errors import BadInput

        pairs = available(res)
        if not pairs:
            raise BadInput(f"target {t['name']}: no variant finished, nothing to measure")
        remote = None
        if t.get("host"):
            from edgedeploy.device.fleet import remote_options

            remote = remote_options(t, {"ssh_config": t.get("ssh_config"), "accept_new_host_key": t.get("accept_new_host_key", False),
                                        "connect_timeout": t.get("connect_timeout", 10), "timeout_s": t.get("timeout", 1800)})
        doc = bench([r["artifact"] for _, r in pairs], resolve_profile(t["profile"]), t["shape"], remote=remote,
                    iterations=t["iterations"], duration_s=t["duration"], warmup=t.get("warmup", 20), threads=t.get("threads"))
        for (n, _), r in zip(pairs, doc["results"]):
            r["variant"] = n
        if t.get("emulated"):
            doc["measured"] = "emulated"
        if t.get("note"):
            doc["note"] = t["note"]
        return doc

    return Stage(f"bench:{t['name']}", "bench", inputs, run, deps=["export"], soft_deps=sorted(set(variant_stage.values()) - {"export"}))
