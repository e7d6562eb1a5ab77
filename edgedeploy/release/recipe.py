"""Release recipes for ``edgedeploy run``: YAML read with line numbers and validated against
``RecipeSpec`` (``edgedeploy schema recipe``) before anything runs. Every error is reported
in one run, each on its own line with the file, line and key, and "did you mean" for unknown
keys; nothing is created. Deprecated keys still work and print a warning.

```yaml
name: sst2-release              # default: the file's stem
source: reference:sst2          # HF directory, minilm-l6, reference:sst2|banking77
export: {optimize: true}
data: {eval: dev.tsv, calib: train.tsv, label_column: label, max_rows: 872}
variants:                       # any quantize setting: the flag in snake_case
  fp32: {method: float, gate: false}
  int8: {method: dynamic, profile: auto}
  int4: {method: int4, int4_embeddings: true}
  small-int8: {model: small, method: dynamic}   # built from a compressed model
compress:                       # optional PyTorch-side steps before export, in order
  small: {method: distill, from: source, student_layers: 3, train_data: train.tsv, train_subset: 8000}
targets:
  - {name: local, profile: auto, shape: "batch=1,sequence=128"}
  - {name: pi, host: pi@raspberrypi.local, profile: rpi4, remote_venv: .edgedeploy/venv}
budgets: {max_accuracy_drop: 0.01, max_p90_ms: 60, max_size_mb: 30}
```
Relative paths are relative to the recipe file. ``--set key.path=value`` overrides a value
(relative paths there are relative to the working directory).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from edgedeploy.core.errors import BadInput
from edgedeploy.core.options import describe_error, did_you_mean
from edgedeploy.core.yaml_io import compose_text, read_yaml
from edgedeploy.export import ExportSettings
from edgedeploy.release import checks
from edgedeploy.release.per_target import per_target
from edgedeploy.release.spec import STEP_KINDS, Budgets, DataSpec, RecipeSpec, TargetSpec, VariantSpec
from edgedeploy.release.stage_ids import reference_variant

# keys whose values are paths: relative to the recipe in the file, to the working directory in --set
PATH_KEYS = {"eval", "calib", "ssh_config", "run_dir", "train_data", "eval_data", "calib_data", "data", "student"}
MAX_BYTES = 1 << 20  # a recipe is a page of YAML, not a data file


class RecipeError(BadInput):
    """Every problem found in a recipe, one ``file:line: key: message`` per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Recipe:
    path: Path
    spec: RecipeSpec  # validated, with paths made absolute

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem

    @property
    def data(self) -> DataSpec:
        return self.spec.data or DataSpec()

    @property
    def variants(self) -> dict[str, VariantSpec]:
        return self.spec.variants

    @property
    def targets(self) -> list[TargetSpec]:
        return self.spec.targets

    def labeled(self) -> bool:
        return labeled(self.spec)

    def budgets(self, target: TargetSpec) -> Budgets:
        return self.spec.budgets.merged(target.budgets)

    def reference_variant(self) -> str:
        return reference_variant(self.spec.variants)

    def document(self) -> dict:
        """The resolved recipe as JSON (``RUN_DIR/recipe.json``)."""
        return {**self.spec.model_dump(mode="json", by_alias=True), "name": self.name, "_file": str(self.path)}


def labeled(spec: RecipeSpec) -> bool:
    return bool(spec.data and spec.data.eval) and spec.data.label_column is not None


# ---- reading: YAML with line numbers ------------------------------------------------------


def _lines(node, path=(), out=None, problems=None) -> dict:
    """Map each key path to its line (1-based); duplicate keys, which YAML would drop silently, are problems."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            key = k.value
            if key in seen:
                problems.append((k.start_mark.line + 1, ".".join(map(str, (*path, key))), "duplicate key"))
            seen.add(key)
            out[(*path, key)] = k.start_mark.line + 1
            _lines(v, (*path, key), out, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out, problems)
    return out


def _line_of(lines: dict, path: tuple) -> int:
    """The line of ``path``, or of its nearest ancestor (for keys added by --set)."""
    p = tuple(path)
    while p not in lines and p:
        p = p[:-1]
    return lines.get(p, 1)


def _apply_set(doc: dict, assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise BadInput(f"--set {assignment!r}: expected key.path=value")
    parts = key.split(".")
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            cur = cur.setdefault(p, {})
        else:
            raise BadInput(f"--set {key}: {p!r} is not a mapping key here")
    value = compose_text(raw, f"--set {key}", with_line=False)[0] if raw else None
    if isinstance(value, str) and (parts[-1] in PATH_KEYS or (key == "source" and Path(value).exists())):
        value = str(Path(value).absolute())  # relative to where the user typed it
    if isinstance(cur, list):
        raise BadInput(f"--set {key}: use an index to pick a list entry (e.g. targets.0.iterations=100)")
    cur[parts[-1]] = value


def _schema_problem(err: dict, doc: dict) -> tuple[tuple, str]:
    """(key path, message) for one pydantic error, in the recipe's own terms."""
    loc = [p for p in err["loc"] if p != "[key]"]
    if not loc:  # a top-level key named like pydantic's own "[key]" marker
        loc = [p for p in err["loc"]]
    if loc[:1] == ["compress"] and len(loc) > 2 and loc[2] in STEP_KINDS:
        kind = loc.pop(2)
        if err["type"] == "extra_forbidden":
            other = next(k for k in STEP_KINDS if k != kind)
            if loc[-1] in STEP_KINDS[other].model_fields:
                return tuple(loc), f"applies to method {other}, not {kind}"
            return tuple(loc), "unknown key" + did_you_mean(loc[-1], STEP_KINDS[kind].model_fields)
    t = err["type"]
    if t == "union_tag_invalid":
        return (*loc, "method"), f"unknown method {err['ctx']['tag']!r}; use one of {', '.join(STEP_KINDS)}"
    if t == "union_tag_not_found":
        return tuple(loc), "missing required key 'method'"
    if t == "missing":
        return tuple(loc[:-1]), f"missing required key {loc[-1]!r}"
    if t == "string_pattern_mismatch":
        return tuple(loc), f"{err['input']!r} is not a valid name: use letters, digits, '.', '_' and '-', not starting with '.'"
    if t == "too_short" and loc and loc[-1] in ("variants", "targets"):
        return tuple(loc), "expected a list with at least one entry" if loc[-1] == "targets" else "expected at least one variant"
    if t == "extra_forbidden":
        return tuple(loc), "unknown key" + did_you_mean(loc[-1], _model_at(loc[:-1], doc).input_keys())
    if t == "literal_error" and loc[-1] == "method":
        return tuple(loc), f"unknown method {err['input']!r}; use one of {err['ctx']['expected']}"
    return tuple(loc), describe_error(err)


def _model_at(loc: list, doc: dict):
    """The settings model that the mapping at ``loc`` is validated against (for 'did you mean')."""
    if not loc:
        return RecipeSpec
    if loc[0] == "variants":
        return VariantSpec
    if loc[0] == "targets":
        return Budgets if "budgets" in loc else TargetSpec
    if loc[0] == "compress" and len(loc) > 1:
        step = (doc.get("compress") or {}).get(loc[1])
        return STEP_KINDS.get(step.get("method"), RecipeSpec) if isinstance(step, dict) else RecipeSpec
    return {"export": ExportSettings, "data": DataSpec, "budgets": Budgets}.get(loc[0], RecipeSpec)


def read(path: Path) -> tuple[dict, object]:
    doc, node = read_yaml(path, "recipe", MAX_BYTES)
    if node is None or not isinstance(doc, dict):
        raise BadInput(f"{path}: expected a mapping with source, variants and targets")
    return doc, node


def load(path, overrides: tuple[str, ...] = ()) -> Recipe:
    """Read, check and resolve a recipe. Raises ``RecipeError`` listing every problem."""
    path = Path(path)
    doc, node = read(path)
    problems: list[tuple[int, str, str]] = []
    lines = _lines(node, problems=problems)
    doc = copy.deepcopy(doc)
    for s in overrides:
        _apply_set(doc, s)
    spec = None
    try:
        spec = RecipeSpec.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors():
            key_path, msg = _schema_problem(err, doc)
            problems.append((_line_of(lines, key_path), ".".join(map(str, key_path)) or "(top level)", msg))
    base = path.resolve().parent
    if spec is not None:
        spec = checks.resolve_paths(spec, base)
        for key_path, msg in checks.problems(spec):
            problems.append((_line_of(lines, key_path), ".".join(map(str, key_path)) or "(top level)", msg))
        if not problems:
            spec, split = per_target(spec)
            problems += [(_line_of(lines, ("variants",)), "variants", msg) for msg in split]
    if problems:
        problems = sorted(dict.fromkeys(problems), key=lambda p: p[0])  # one line per problem, in file order
        raise RecipeError([f"{path}:{line}: {key}: {msg}" for line, key, msg in problems])
    return Recipe(path.resolve(), spec)


def from_document(doc: dict) -> RecipeSpec:
    """A run directory's ``recipe.json`` (written by any version) as a typed spec."""
    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    try:
        return RecipeSpec.model_validate(body)
    except ValidationError as exc:
        raise BadInput(f"recipe.json: not a recipe this version can read ({describe_error(exc.errors()[0])})") from None
