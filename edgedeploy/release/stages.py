"""The stages of a release recipe: compress (one per PyTorch-side step, when the recipe has
any) -> export (the source, and each compressed model a variant uses) -> quantize (one per
variant) -> eval (one per variant, when the recipe has eval data) -> bench (one per target,
every variant interleaved). Each stage says what its result depends on (the cache key) and
how to produce it; its result is a typed record (``records.py``)."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.bench import bench
from edgedeploy.compress import distill, prune, reference
from edgedeploy.compress.options import DistillOptions, PruneOptions
from edgedeploy.core.adopt import adopt, is_onnx_model, open_model
from edgedeploy.core.artifact import Artifact, file_sha256
from edgedeploy.core.errors import BadInput
from edgedeploy.core.sources import REFERENCE, resolve
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.export import ExportOptions, export
from edgedeploy.exporters.huggingface import generates
from edgedeploy.measure_options import MeasureOptions
from edgedeploy.quality.evaluate import evaluate
from edgedeploy.quality.perplexity import perplexity
from edgedeploy.quantize.api import quantize
from edgedeploy.quantize.options import QuantizeOptions
from edgedeploy.release import stage_ids as ids
from edgedeploy.release.per_target import measured_on
from edgedeploy.release.pipeline import Stage
from edgedeploy.release.recipe import Recipe
from edgedeploy.release.records import ArtifactResult, BenchResult, CompressResult, EvalResult, ExportResult, QuantizeResult, data_digests
from edgedeploy.release.spec import TUNE_KEYS, DistillStep, PruneStep, TargetSpec, VariantSpec
from edgedeploy.release.stage_ids import SOURCE_MODEL, StageId
from edgedeploy.release.tune_stage import tune_stage
from edgedeploy.targets import target_for

ARTIFACTS = "artifacts"
MODELS = "models"
NOT_A_CLASSIFIER = "not a classifier: accuracy does not apply, fidelity only"


def tree_fingerprint(root: Path) -> list:
    """(relative path, sha256) of every file under a source model directory or file."""
    root = Path(root)
    if root.is_file():
        return [(root.name, file_sha256(root))]
    return [(str(p.relative_to(root)), file_sha256(p)) for p in sorted(root.rglob("*")) if p.is_file()]


def source_fingerprint(source: str, revision: str | None = None):
    """What the recipe's source is, for cache keys, without building anything: a reference
    classifier is named by its own cache key, a directory by its files."""

    if source.startswith(REFERENCE):
        return {"reference": source, "key": reference.key(source[len(REFERENCE) :])}
    if is_onnx_model(source):  # the files adopting it would take, by their hashes
        return {"onnx": {name: f.model_dump() for name, f in open_model(source).manifest.files.items()}}
    return tree_fingerprint(resolve(source, revision=revision).path)


def _artifact_intact(result: ArtifactResult) -> bool:
    return result.intact()


def _data_key(recipe: Recipe, *keys) -> dict:
    d = recipe.data
    out = {k: getattr(d, k) for k in ("text_column", "text_pair_column", "label_column", "max_rows")}
    for k in keys:
        out[k] = file_sha256(getattr(d, k)) if getattr(d, k) else None
    return out


def build(recipe: Recipe, run_dir: Path) -> list[Stage]:
    arts = Path(run_dir) / ARTIFACTS
    fname = recipe.reference_variant()
    compress = recipe.spec.compress
    used = {v.model for v in recipe.variants.values()} - {SOURCE_MODEL}
    needed = set()  # compressed models that are used, and the steps they are made from
    for m in used:
        while m != SOURCE_MODEL and m not in needed:
            needed.add(m)
            m = compress[m].from_
    stages = [_compress_stage(recipe, m, Path(run_dir) / MODELS / m) for m in compress if m in needed]
    stages.append(_export_stage(recipe, SOURCE_MODEL, arts / fname))
    for m in compress:
        if m in used:
            float_variant = next((n for n, v in recipe.variants.items() if v.model == m and v.method == "float"), m)
            stages.append(_export_stage(recipe, m, arts / float_variant))
    variant_stage = {}
    for name, v in recipe.variants.items():
        if v.method == "tune":
            stages.append(tune_stage(recipe, name, v, arts / name))
        elif v.method != "float":
            stages.append(_quantize_stage(recipe, name, v, arts / name))
        variant_stage[name] = ids.producer(v.method, v.model, name)
    if recipe.data.eval:
        for name, sid in variant_stage.items():
            stages.append(_eval_stage(recipe, name, sid))
        if fname not in variant_stage:  # the float reference is always evaluated, for accuracy drops
            stages.append(_eval_stage(recipe, fname, ids.export()))
    for t in recipe.targets:
        stages.append(_bench_stage(t, {n: s for n, s in variant_stage.items() if measured_on(recipe.variants[n], t.name)}))
    return stages


def _compress_stage(recipe: Recipe, name: str, out: Path) -> Stage:
    """A PyTorch-side step (prune or distill) from the source or an earlier step, into ``RUN_DIR/models/NAME``."""
    c = recipe.spec.compress[name]
    parent = c.from_
    d = recipe.data
    deps = [] if parent == SOURCE_MODEL else [ids.compress(parent)]
    settings = c.model_dump(mode="json", exclude={"from_", "train_data"})

    def parent_path(res) -> str:
        return recipe.spec.source if parent == SOURCE_MODEL else res[ids.compress(parent)].model

    def inputs(res):
        files = (
            source_fingerprint(recipe.spec.source, recipe.spec.export.revision if recipe.spec.export else None)
            if parent == SOURCE_MODEL
            else res[ids.compress(parent)].files
        )
        return {
            "parent": files,
            "settings": settings,
            "train": file_sha256(c.train_data) if c.train_data else None,
            "eval": _data_key(recipe, "eval") if recipe.labeled() else None,
        }

    def run(res) -> CompressResult:
        # the recipe's data section fills what the step does not set itself
        common = {
            k: v
            for k, v in {
                "eval_data": d.eval if recipe.labeled() else None,
                "text_column": d.text_column,
                "label_column": d.label_column or "label",
            }.items()
            if k not in c.model_fields_set
        }
        fields = c.model_dump(exclude={"from_", "method"}) | common
        if isinstance(c, PruneStep):
            rec = prune(parent_path(res), out, PruneOptions(**fields), force=True)
        else:
            assert isinstance(c, DistillStep)
            # an interrupted run resumes the distillation from RUN_DIR/models/NAME.partial
            rec = distill(parent_path(res), out, DistillOptions(**fields), force=True, resume="if-compatible")
        return CompressResult(
            model=str(out),
            files=tree_fingerprint(out),
            method=c.method,
            from_=parent,
            parameters=rec["parameters"],
            accuracy=rec.get("accuracy"),
            seconds=rec["seconds"],
        )

    def intact(result: CompressResult) -> bool:
        try:
            return tree_fingerprint(Path(result.model)) == [tuple(x) for x in result.files]
        except OSError:
            return False

    return Stage(ids.compress(name), inputs, run, deps=deps, intact=intact)


def _export_stage(recipe: Recipe, model: str, out: Path) -> Stage:
    ex = recipe.spec.export
    deps = [] if model == SOURCE_MODEL else [ids.compress(model)]
    adopted = model == SOURCE_MODEL and is_onnx_model(recipe.spec.source)
    sample = None if adopted or generates(recipe.spec.source, ex.task) else recipe.data.eval  # decoders are validated on generated tokens

    def source(res) -> str:
        return recipe.spec.source if model == SOURCE_MODEL else res[ids.compress(model)].model

    def inputs(res):
        files = (
            source_fingerprint(recipe.spec.source, recipe.spec.export.revision if recipe.spec.export else None)
            if model == SOURCE_MODEL
            else res[ids.compress(model)].files
        )
        return {
            "source": recipe.spec.source if model == SOURCE_MODEL else model,
            "files": files,
            "export": ex.recorded(),
            "sample_data": file_sha256(sample) if sample else None,
        }

    def run(res) -> ExportResult:
        if adopted:  # an ONNX model is adopted, not exported: no torch
            art = adopt(recipe.spec.source, out, force=True)
            return ExportResult(artifact=str(art.path), digest=art.digest, validation={"passed": None, "max_abs_diff": None, "inputs_from": None})
        opts = ExportOptions(**ex.model_dump(), eval_data=Path(sample) if sample else None, text_column=recipe.data.text_column)
        art = export(source(res), out, options=opts, force=True)
        return ExportResult(
            artifact=str(art.path),
            digest=art.digest,
            validation=art.manifest.validation.model_dump(include={"passed", "max_abs_diff", "inputs_from"}),
        )

    return Stage(ids.export(model), inputs, run, deps=deps, intact=_artifact_intact)


def quantize_options(recipe: Recipe, v: VariantSpec) -> QuantizeOptions:
    """A variant's quantize settings, with the recipe's data section filling what it does not set."""
    d = recipe.data
    fields = v.model_dump(exclude={"gate", "model", "budgets", "targets", *TUNE_KEYS})
    defaults = {
        "calib_data": Path(d.calib) if d.calib and v.uses_calibration() else None,
        "eval_data": Path(d.eval) if d.eval else None,
        "text_column": d.text_column,
        "label_column": d.label_column or "label",
    }
    for k, val in defaults.items():
        if k not in v.model_fields_set:
            fields[k] = val
    return QuantizeOptions(**fields)


def _quantize_stage(recipe: Recipe, name: str, v: VariantSpec, out: Path) -> Stage:
    opts = quantize_options(recipe, v)
    parent = ids.export(v.model)
    settings = opts.model_dump(mode="json", exclude={"calib_data", "eval_data"})

    def inputs(res):
        return {"parent": res[parent].digest, "settings": settings, "profile": resolve_profile(v.profile), "data": data_digests(opts)}

    def run(res) -> QuantizeResult:
        return QuantizeResult.of(
            quantize(res[parent].artifact, out, options=opts.model_copy(update={"profile": resolve_profile(v.profile)}), force=True)
        )

    return Stage(ids.quantize(name), inputs, run, deps=[parent], intact=_artifact_intact)


SEQ2SEQ_NOTE = "an encoder-decoder: fidelity by generation against its float export, no labels"


def _eval_stage(recipe: Recipe, name: str, producer: StageId) -> Stage:
    d = recipe.data
    is_ref = producer.kind == "export"  # a float export is measured on its own
    ref = ids.export(recipe.variants[name].model) if name in recipe.variants else ids.export()  # fidelity against the model's float export

    def inputs(res):
        return {"artifact": res[producer].digest, "reference": None if is_ref else res[ref].digest, "data": _data_key(recipe, "eval")}

    def run(res) -> EvalResult:
        art = Artifact.load(res[producer].artifact)
        if art.is_seq2seq:  # an encoder-decoder: fidelity by generation against its float export, on the text
            if is_ref:
                return EvalResult(variant=name, note=SEQ2SEQ_NOTE)
            out = evaluate(art.path, Path(d.eval), reference=res[ref].artifact, text_column=d.text_column, limit=d.max_rows)
            return EvalResult(**out, variant=name, note=SEQ2SEQ_NOTE)
        if art.manifest.is_decoder:  # a decoder: perplexity on the text, and agreement with its float export
            out = perplexity(
                art, Path(d.eval), reference=None if is_ref else Artifact.load(res[ref].artifact), text_column=d.text_column, limit=d.max_rows
            )
            return EvalResult(
                variant=name, samples=out["scored_tokens"], data=out["data"], perplexity=out, note="a decoder: perplexity, not accuracy"
            )
        # a model without a classification head (a sentence encoder) gets fidelity only
        classifier = len(art.manifest.outputs[0].shape) == 2
        label_column = d.label_column if classifier else None
        if is_ref and label_column is None:
            return EvalResult(variant=name, note=NOT_A_CLASSIFIER)
        out = evaluate(
            art.path,
            Path(d.eval),
            reference=None if is_ref else res[ref].artifact,
            text_column=d.text_column,
            label_column=label_column,
            text_pair_column=d.text_pair_column,
            limit=d.max_rows,
        )
        return EvalResult(**out, variant=name, note=None if classifier else NOT_A_CLASSIFIER)

    deps = [producer] if is_ref else [ref, producer]
    return Stage(ids.evaluate(name), inputs, run, deps=deps)


def _bench_stage(t: TargetSpec, variant_stage: dict[str, StageId]) -> Stage:
    settings = t.model_dump(mode="json", exclude={"budgets", "max_cv", "note"})

    def available(res):
        return [(n, res[s]) for n, s in variant_stage.items() if s in res]

    def inputs(res):
        where = target_for(t.host, t).identity()
        return {"variants": [(n, r.digest) for n, r in available(res)], "settings": settings, "profile": resolve_profile(t.profile), **where}

    def run(res) -> BenchResult:
        pairs = available(res)
        if not pairs:
            raise BadInput(f"target {t.name}: no variant finished, nothing to measure")
        opts = MeasureOptions(**t.model_dump(include=set(MeasureOptions.model_fields)))
        doc = bench([r.artifact for _, r in pairs], opts.model_copy(update={"profile": resolve_profile(t.profile)}), target=target_for(t.host, t))
        for (n, _), r in zip(pairs, doc["results"]):
            r["variant"] = n
        if t.emulated:
            doc["measured"] = "emulated"
        if t.note:
            doc["note"] = t.note
        return BenchResult(**doc)

    soft = sorted({s for s in variant_stage.values()} - {ids.export()}, key=str)
    return Stage(ids.bench(t.name), inputs, run, deps=[ids.export()], soft_deps=soft)
