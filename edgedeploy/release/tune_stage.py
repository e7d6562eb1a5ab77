"""A recipe variant ``{method: tune, ...}``: ``edgedeploy tune`` on the variant's model, measured
on one of the recipe's targets, published as the variant's artifact."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.core.artifact import Artifact
from edgedeploy.core.errors import BadInput
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.device.options import RemoteOptions
from edgedeploy.release import stage_ids as ids
from edgedeploy.release.pipeline import Stage
from edgedeploy.release.recipe import Recipe
from edgedeploy.release.records import ArtifactResult, QuantizeResult, data_digests
from edgedeploy.release.spec import VariantSpec
from edgedeploy.tune.options import TuneOptions
from edgedeploy.tune.search import tune

# target keys that say where and how to reach the device; how long to time is tune's own
TARGET_KEYS = {"profile", "shape", "threads", "providers", "allow_fallback", "host", *RemoteOptions.model_fields}


def tune_options(recipe: Recipe, name: str, v: VariantSpec) -> TuneOptions:
    t = next(t for t in recipe.spec.targets if t.name == v.tune_on) if v.tune_on else recipe.spec.targets[0]  # checked by checks.py
    d = recipe.data
    where = t.model_dump(include=TARGET_KEYS)
    fields = {
        **where,
        "profile": resolve_profile(t.profile),
        "min_mean_cosine": v.min_mean_cosine,
        "min_worst_cosine": v.min_worst_cosine,
        "max_accuracy_drop": v.max_accuracy_drop,
        "max_size_mb": v.max_size_mb,
        "calib_data": Path(d.calib) if d.calib else None,
        "eval_data": Path(d.eval) if d.eval else None,
        "text_column": d.text_column,
        "label_column": d.label_column or "label",
        "eval_samples": v.eval_samples,
        "calib_samples": v.calib_samples,
    }
    for key in ("objective", "max_minutes"):
        if getattr(v, key) is not None:
            fields[key] = getattr(v, key)
    if v.methods:
        fields["methods"] = v.methods
    try:
        return TuneOptions(**fields)
    except ValueError as exc:
        raise BadInput(f"variants.{name}: {str(exc).splitlines()[-1].strip()}") from None


def tune_stage(recipe: Recipe, name: str, v: VariantSpec, out: Path) -> Stage:
    parent = ids.export(v.model)

    def inputs(res):
        opts = tune_options(recipe, name, v)
        return {
            "parent": res[parent].digest,
            "settings": opts.model_dump(mode="json", exclude={"calib_data", "eval_data"}),
            "data": data_digests(opts),
        }

    def run(res) -> QuantizeResult:
        doc = tune(res[parent].artifact, out, tune_options(recipe, name, v), force=True)
        art = Artifact.load(out)
        w = doc["winner"]
        summary = {"winner": w["label"], "candidates": len(doc["candidates"]), "session": w["session"], "target": doc["target"]}
        return QuantizeResult.of(art, method=f"tune:{art.manifest.quantization.method}", profile=doc["profile"], tune=summary)

    return Stage(ids.quantize(name), inputs, run, deps=[parent], intact=ArtifactResult.intact)
