"""Checks across a recipe's keys, after the schema: methods and data that go together, names
that must be unique or defined, files that must exist, budgets that can be evaluated. Each
problem is (key path, message); the caller reports them all at once."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.compress.reference import KNOWN
from edgedeploy.core.sources import REFERENCE, hub_snapshot, is_hub_id, is_named_source
from edgedeploy.device.profiles import available
from edgedeploy.quantize import methods
from edgedeploy.release.budgets import ACCURACY
from edgedeploy.release.spec import DistillStep, PruneStep, RecipeSpec
from edgedeploy.release.stage_ids import SOURCE_MODEL
from edgedeploy.runtimes.stats import MIN_SAMPLES

P90_MIN_SAMPLES = MIN_SAMPLES[90]


def _abs(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    p = Path(value)
    return str(p if p.is_absolute() else (base / p).resolve())


def resolve_paths(spec: RecipeSpec, base: Path) -> RecipeSpec:
    """Paths in the recipe are relative to the recipe file; make them absolute."""
    spec = spec.model_copy(deep=True)
    if spec.data:
        for k in ("eval", "calib"):
            if getattr(spec.data, k) is not None:
                setattr(spec.data, k, _abs(base, getattr(spec.data, k)))
    for v in spec.variants.values():
        for k in ("calib_data", "eval_data"):
            if getattr(v, k) is not None:
                setattr(v, k, Path(_abs(base, str(getattr(v, k)))))
    for c in spec.compress.values():
        for k in ("train_data", "eval_data"):  # only what is set: an assignment marks a field as given (model_fields_set)
            if getattr(c, k) is not None:
                setattr(c, k, _abs(base, getattr(c, k)))
        if isinstance(c, DistillStep) and c.student and not Path(c.student).is_absolute() and (base / c.student).exists():
            c.student = str((base / c.student).resolve())
    for t in spec.targets:
        if t.ssh_config is not None:
            t.ssh_config = Path(_abs(base, str(t.ssh_config)))
    if spec.run_dir is not None:
        spec.run_dir = _abs(base, spec.run_dir)
    if not is_named_source(spec.source) and not (is_hub_id(spec.source) and not (base / spec.source).exists()):
        spec.source = _abs(base, spec.source)
    return spec


def problems(spec: RecipeSpec) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    lab = bool(spec.data and spec.data.eval) and spec.data.label_column is not None
    out += _files(spec)
    out += _variants(spec, lab)
    out += _compress(spec)
    out += _targets(spec, lab)
    return out


def _files(spec: RecipeSpec) -> list:
    out = []
    if is_hub_id(spec.source):
        hub_snapshot(spec.source, spec.export.revision if spec.export else None)  # not cached offline: exit 3 before anything runs
    elif not is_named_source(spec.source) and not Path(spec.source).exists():
        out.append((("source",), f"no such model directory or file: {spec.source}"))
    if spec.source.startswith(REFERENCE) and spec.source[len(REFERENCE) :] not in KNOWN:
        out.append((("source",), f"unknown reference model {spec.source!r}; known: {', '.join(REFERENCE + t for t in KNOWN)}"))
    found = [(("data", k), getattr(spec.data, k)) for k in ("eval", "calib")] if spec.data else []
    found += [(("variants", n, k), getattr(v, k)) for n, v in spec.variants.items() for k in ("calib_data", "eval_data")]
    found += [(("compress", n, k), getattr(c, k)) for n, c in spec.compress.items() for k in ("train_data", "eval_data")]
    found += [(("targets", i, "ssh_config"), t.ssh_config) for i, t in enumerate(spec.targets)]
    return out + [(where, f"no such file: {p}") for where, p in found if p is not None and not Path(p).is_file()]


def _variants(spec: RecipeSpec, lab: bool) -> list:
    out = []
    profiles = set(available()) | {"auto"}
    calib = bool(spec.data and spec.data.calib)
    seen_float: dict[str, str] = {}
    targets = [t.name for t in spec.targets]
    for name, v in spec.variants.items():
        if v.profile and v.profile not in profiles:
            out.append((("variants", name, "profile"), f"unknown profile {v.profile!r}; known: {', '.join(sorted(profiles))}"))
        unknown = [t for t in v.targets if t not in targets]
        if unknown:
            out.append((("variants", name, "targets"), f"no target named {unknown[0]!r}; targets: {', '.join(targets)}"))
        if (
            v.method in methods.names()
            and methods.get(v.method).calibration == "required"
            and not (calib or v.calib_data)
            and not v.random_calibration
        ):
            out.append((("variants", name, "method"), f"{v.method} quantization needs data.calib (calibration text)"))
        if v.max_accuracy_drop is not None and not lab:
            out.append((("variants", name, "max_accuracy_drop"), "needs labeled data.eval (with data.label_column)"))
        if v.model != SOURCE_MODEL and v.model not in spec.compress:
            out.append(
                (
                    ("variants", name, "model"),
                    f"unknown model {v.model!r}; use source or a name under compress: ({', '.join(spec.compress) or 'none defined'})",
                )
            )
        if v.method == "tune":
            out += _tune_variant(spec, name, v)
        if v.method == "float":
            if v.model in seen_float:
                out.append((("variants", name), f"only one float variant per model ({seen_float[v.model]!r} already exports {v.model})"))
            seen_float.setdefault(v.model, name)
    return out


def _tune_variant(spec: RecipeSpec, name: str, v) -> list:
    out = []
    targets = [t.name for t in spec.targets]
    if v.tune_on is not None and v.tune_on not in targets:
        out.append((("variants", name, "tune_on"), f"no target named {v.tune_on!r}; targets: {', '.join(targets)}"))
    if not (spec.data and (spec.data.eval or spec.data.calib)):
        out.append(
            (("variants", name, "method"), "tune measures fidelity on real samples: it needs data.eval (and data.calib for static candidates)")
        )
    return out


def _compress(spec: RecipeSpec) -> list:
    out = []
    defined = [SOURCE_MODEL]
    for name, c in spec.compress.items():
        where = ("compress", name)
        if name == SOURCE_MODEL:
            out.append((where, f"{SOURCE_MODEL!r} names the recipe's source; choose another name"))
        if c.from_ not in defined:
            out.append(((*where, "from"), f"unknown model {c.from_!r}; use source or a step defined above ({', '.join(defined)})"))
        if isinstance(c, DistillStep):
            if not c.train_data:
                out.append((where, "distill needs train_data: (the training text)"))
            if not (c.student or c.student_layers):
                out.append((where, "distill needs student_layers: (e.g. 3) or student: (a model directory)"))
        if isinstance(c, PruneStep) and not any((c.heads, c.ffn, c.keep_layers)):
            out.append((where, "prune needs heads:, ffn: and/or keep_layers:"))
        defined.append(name)
    return out


def _targets(spec: RecipeSpec, lab: bool) -> list:
    out = []
    profiles = set(available()) | {"auto"}
    names = [t.name for t in spec.targets]
    for i, t in enumerate(spec.targets):
        if names.count(t.name) > 1 and names.index(t.name) != i:
            out.append((("targets", i, "name"), f"target name {t.name!r} is used twice"))
        if t.profile not in profiles:
            out.append((("targets", i, "profile"), f"unknown profile {t.profile!r}; known: {', '.join(sorted(profiles))}"))
        if t.host and t.profile == "auto":
            out.append((("targets", i, "host"), "an SSH target needs profile: naming the device (e.g. rpi4)"))
        budgets = spec.budgets.merged(t.budgets).set()
        own = t.budgets.set() if t.budgets else {}
        for b in ACCURACY:
            if b in budgets and not lab:
                where = ("targets", i, "budgets", b) if b in own else ("budgets", b)
                out.append((where, "this accuracy budget cannot be evaluated without labeled data.eval (data.label_column not null)"))
        if "max_p90_ms" in budgets and t.iterations < P90_MIN_SAMPLES:
            out.append((("targets", i, "iterations"), f"p90 needs at least {P90_MIN_SAMPLES} samples; raise iterations to {P90_MIN_SAMPLES} or more"))
    return out
