"""Release recipes for ``edgedeploy run``: YAML read with line numbers and validated against
one schema before anything runs (unknown key, wrong type, missing file, a budget that cannot
be evaluated: each is one line naming the file, line and key).

```yaml
name: sst2-release              # default: the file's stem
source: reference:sst2          # HF directory, minilm-l6, reference:sst2|banking77
export: {optimize: true}
data: {eval: dev.tsv, calib: train.tsv, label_column: label, limit: 872}
variants:
  fp32: {method: float, gate: false}
  int8: {method: dynamic, profile: auto}
  int4: {method: int4}
  small-int8: {model: small, method: dynamic}   # built from a compressed model
compress:                       # optional PyTorch-side steps before export, in order
  small: {method: distill, from: source, student_layers: 3, data: train.tsv, limit: 8000}
  small-pruned: {method: prune, from: small, heads: 0.2, data: train.tsv, recover_epochs: 1}
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

from edgedeploy.core.errors import BadInput

# type names: str, int, float, bool, path (existing file), outpath, list[str], or a nested dict
BUDGETS = {"max_accuracy_drop": "float", "min_accuracy": "float", "min_cosine": "float", "max_p90_ms": "float", "max_p50_ms": "float",
           "max_size_mb": "float", "min_throughput": "float", "min_compression": "float", "min_accuracy_retained": "float"}
VARIANT = {
    "method": "str", "profile": "str", "gate": "bool", "exclude": "list[str]",
    "weight_type": "str", "activation_type": "str", "per_channel": "bool", "reduce_range": "bool", "format": "str",
    "calib_samples": "int", "calib_method": "str", "block_size": "int", "symmetric": "bool", "accuracy_level": "int",
    "embeddings": "bool", "sensitive_8bit": "int", "min_cosine": "float", "min_worst_cosine": "float", "max_drop": "float",
    "eval_samples": "int", "model": "str",
}
# compression steps: keys of PruneOptions / DistillOptions (checked per method in _semantics)
COMPRESS = {
    "method": "str", "from": "str", "data": "path", "limit": "int", "lr": "float", "batch_size": "int", "max_length": "int", "seed": "int",
    "heads": "scalar", "ffn": "float", "keep_layers": "scalar", "importance": "str", "importance_samples": "int", "steps": "int",
    "recover_epochs": "float", "allow_empty_layer": "bool",
    "student": "str", "student_layers": "scalar", "temperature": "float", "alpha": "float", "hidden_weight": "float",
    "attention_weight": "float", "relation_heads": "int", "epochs": "float", "checkpoint_every": "int",
}
COMPRESS_METHODS = ("prune", "distill")
SOURCE_MODEL = "source"  # the name of the recipe's source in ``from:`` and ``model:``
TARGET = {
    "name": "str", "profile": "str", "host": "str", "remote_venv": "str", "remote_python": "str", "ssh_config": "path",
    "accept_new_host_key": "bool", "connect_timeout": "float", "timeout": "float",
    "shape": "str", "iterations": "int", "duration": "float", "warmup": "int", "threads": "int", "max_cv": "float",
    "emulated": "bool", "note": "str", "budgets": BUDGETS,
}
SCHEMA = {
    "name": "str", "source": "str", "run_dir": "outpath",
    "export": {"task": "str", "optimize": "bool", "opset": "int", "atol": "float", "rtol": "float"},
    "data": {"eval": "path", "calib": "path", "text_column": "str", "text_pair_column": "str", "label_column": "str?", "limit": "int"},
    "variants": ("map", VARIANT),
    "compress": ("map", COMPRESS),
    "targets": ("list", TARGET),
    "budgets": BUDGETS,
}
REQUIRED = {(): ("source", "variants", "targets"), ("targets", "*"): ("name",), ("variants", "*"): ("method",), ("compress", "*"): ("method",)}
METHODS = ("float", "dynamic", "static", "fp16", "int4")
PATH_KEYS = {"path", "outpath"}


@dataclass
class Recipe:
    path: Path
    doc: dict  # validated, with paths made absolute and defaults filled

    @property
    def name(self) -> str:
        return self.doc["name"]

    def variants(self) -> dict[str, dict]:
        return self.doc["variants"]

    def targets(self) -> list[dict]:
        return self.doc["targets"]

    def budgets_for(self, target: dict) -> dict:
        return {**self.doc.get("budgets", {}), **target.get("budgets", {})}

    @property
    def data(self) -> dict:
        return self.doc.get("data", {})

    def labeled(self) -> bool:
        return bool(self.data.get("eval")) and self.data.get("label_column") is not None


def _lines(node, path=(), out=None) -> dict:
    """Map each key path to its line (1-based); reject duplicate keys, which YAML would drop silently."""
    import yaml

    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            key = k.value
            if key in seen:
                raise _Err(k.start_mark.line + 1, ".".join(map(str, path + (key,))), "duplicate key")
            seen.add(key)
            out[path + (key,)] = k.start_mark.line + 1
            _lines(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)
    return out


class _Err(Exception):
    def __init__(self, line, key, msg):
        super().__init__(msg)
        self.line, self.key, self.msg = line, key, msg


def _type_ok(value, t: str) -> bool:
    if t.endswith("?"):
        return value is None or _type_ok(value, t[:-1])
    if t in ("str", "path", "outpath"):
        return isinstance(value, str) and value != ""
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "bool":
        return isinstance(value, bool)
    if t == "scalar":
        return isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != ""
    if t == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise AssertionError(t)


def _err_at(lines: dict, path: tuple, msg: str) -> _Err:
    """An error at ``path``, on its line (or its nearest ancestor's, for keys added by --set)."""
    p = path
    while p not in lines and p:
        p = p[:-1]
    return _Err(lines.get(p, 1), ".".join(map(str, path)) or "(top level)", msg)


def _check(value, spec, path, lines, base: Path):
    def err(p, msg):
        return _err_at(lines, p, msg)

    if isinstance(spec, tuple):  # ("map", item spec) or ("list", item spec)
        kind, item = spec
        if kind == "map":
            if not isinstance(value, dict) or not value:
                raise err(path, "expected a mapping of name -> settings with at least one entry")
            for k, v in value.items():
                if v is None:
                    v = value[k] = {}
                _check(v, item, path + (k,), lines, base)
        else:
            if not isinstance(value, list) or not value:
                raise err(path, "expected a list with at least one entry")
            for i, v in enumerate(value):
                _check(v, item, path + (i,), lines, base)
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise err(path, f"expected a mapping, got {type(value).__name__}")
        for k in value:
            if k not in spec:
                raise err(path + (k,), f"unknown key (known here: {', '.join(sorted(spec))})")
        wild = tuple("*" if isinstance(p, int) or (i == 1 and path[0] in ("variants", "compress")) else p for i, p in enumerate(path))
        for k in REQUIRED.get(wild, ()):
            if k not in value:
                raise err(path, f"missing required key {k!r}")
        for k, v in value.items():
            _check(v, spec[k], path + (k,), lines, base)
        return
    if not _type_ok(value, spec):
        raise err(path, f"expected {spec.rstrip('?')}{' or null' if spec.endswith('?') else ''}, got {type(value).__name__} {value!r}")
    if spec == "path":
        p = Path(value) if Path(value).is_absolute() else base / value
        if not p.is_file():
            raise err(path, f"no such file: {p}")


def _semantics(doc: dict, lines: dict) -> None:
    """Checks across keys: methods, profiles, unique names, budgets that can be evaluated."""
    from edgedeploy.device.profiles import available

    def err(p, msg):
        return _err_at(lines, p, msg)

    profiles = set(available()) | {"auto"}
    for name, v in doc["variants"].items():
        if v["method"] not in METHODS:
            raise err(("variants", name, "method"), f"unknown method {v['method']!r}; use one of {', '.join(METHODS)}")
        if v.get("profile") and v["profile"] not in profiles:
            raise err(("variants", name, "profile"), f"unknown profile {v['profile']!r}; known: {', '.join(sorted(profiles))}")
        if v["method"] == "static" and not doc.get("data", {}).get("calib"):
            raise err(("variants", name, "method"), "static quantization needs data.calib (calibration text)")
        if v.get("max_drop") is not None and not _labeled(doc):
            raise err(("variants", name, "max_drop"), "needs labeled data.eval (with data.label_column)")
    _check_compress(doc, err)
    seen_float: dict[str, str] = {}
    for n, v in doc["variants"].items():
        model = v.get("model", SOURCE_MODEL)
        if model != SOURCE_MODEL and model not in doc.get("compress", {}):
            raise err(("variants", n, "model"), f"unknown model {model!r}; use source or a name under compress: ({', '.join(doc.get('compress', {})) or 'none defined'})")
        if v["method"] == "float":
            if model in seen_float:
                raise err(("variants", n), f"only one float variant per model ({seen_float[model]!r} already exports {model})")
            seen_float[model] = n
    names = [t["name"] for t in doc["targets"]]
    for i, t in enumerate(doc["targets"]):
        if names.count(t["name"]) > 1:
            raise err(("targets", i, "name"), f"target name {t['name']!r} is used twice")
        if t.get("profile", "auto") not in profiles:
            raise err(("targets", i, "profile"), f"unknown profile {t['profile']!r}; known: {', '.join(sorted(profiles))}")
        if t.get("host") and t.get("profile", "auto") == "auto":
            raise err(("targets", i, "host"), "an SSH target needs profile: naming the device (e.g. rpi4)")
        budgets = {**doc.get("budgets", {}), **t.get("budgets", {})}
        for b in ("max_accuracy_drop", "min_accuracy", "min_accuracy_retained"):
            if b in budgets and not _labeled(doc):
                where = ("targets", i, "budgets", b) if b in t.get("budgets", {}) else ("budgets", b)
                raise err(where, "this accuracy budget cannot be evaluated without labeled data.eval (data.label_column not null)")
        if "max_p90_ms" in budgets and t.get("iterations", 200) < 64:
            raise err(("targets", i, "iterations"), "p90 needs at least 64 samples; raise iterations to 64 or more")


def _check_compress(doc: dict, err) -> None:
    from dataclasses import fields

    from edgedeploy.compress import DistillOptions, PruneOptions

    allowed = {"prune": {f.name for f in fields(PruneOptions)}, "distill": {f.name for f in fields(DistillOptions)}}
    defined = [SOURCE_MODEL]
    for name, c in doc.get("compress", {}).items():
        if name == SOURCE_MODEL:
            raise err(("compress", name), f"{SOURCE_MODEL!r} names the recipe's source; choose another name")
        if c["method"] not in COMPRESS_METHODS:
            raise err(("compress", name, "method"), f"unknown method {c['method']!r}; use one of {', '.join(COMPRESS_METHODS)}")
        for k in c:
            if k not in ("method", "from") and k not in allowed[c["method"]]:
                other = next(m for m in COMPRESS_METHODS if m != c["method"])
                raise err(("compress", name, k), f"applies to method {other}, not {c['method']}")
        parent = c.get("from", SOURCE_MODEL)
        if parent not in defined:
            raise err(("compress", name, "from"), f"unknown model {parent!r}; use source or a step defined above ({', '.join(defined)})")
        if c["method"] == "distill" and not c.get("data"):
            raise err(("compress", name), "distill needs data: (the training text)")
        if c["method"] == "distill" and not (c.get("student") or c.get("student_layers")):
            raise err(("compress", name), "distill needs student_layers: (e.g. 3) or student: (a model directory)")
        if c["method"] == "prune" and not any(c.get(k) for k in ("heads", "ffn", "keep_layers")):
            raise err(("compress", name), "prune needs heads:, ffn: and/or keep_layers:")
        defined.append(name)


def _labeled(doc) -> bool:
    d = doc.get("data", {})
    return bool(d.get("eval")) and d.get("label_column", "label") is not None


def _apply_set(doc: dict, assignment: str) -> None:
    import yaml

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
    value = yaml.safe_load(raw) if raw else None
    if isinstance(value, str) and (key.split(".")[-1] in ("eval", "calib", "ssh_config", "run_dir", "data", "student") or (key == "source" and Path(value).exists())):
        value = str(Path(value).absolute())  # relative to where the user typed it
    if isinstance(cur, list):
        raise BadInput(f"--set {key}: use an index to pick a list entry (e.g. targets.0.iterations=100)")
    cur[parts[-1]] = value


def load(path, overrides: tuple[str, ...] = ()) -> Recipe:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such recipe file")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise BadInput(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if node is None or not isinstance(doc, dict):
        raise BadInput(f"{path}: expected a mapping with source, variants and targets")
    base = path.resolve().parent
    try:
        lines = _lines(node)
        doc = copy.deepcopy(doc)
        for s in overrides:
            _apply_set(doc, s)
        _check(doc, SCHEMA, (), lines, base)
        _semantics(doc, lines)
    except _Err as e:
        raise BadInput(f"{path}:{e.line}: {e.key}: {e.msg}") from None
    doc.setdefault("name", path.stem)
    for section, spec in (("data", SCHEMA["data"]),):
        for k, t in spec.items():
            if t in PATH_KEYS and section in doc and doc[section].get(k):
                doc[section][k] = str((base / doc[section][k]).resolve())
    for c in doc.get("compress", {}).values():
        c.setdefault("from", SOURCE_MODEL)
        if c.get("data"):
            c["data"] = str((base / c["data"]).resolve())
        if c.get("student") and not Path(c["student"]).is_absolute() and (base / c["student"]).exists():
            c["student"] = str((base / c["student"]).resolve())
    for v in doc["variants"].values():
        v.setdefault("model", SOURCE_MODEL)
    if "data" in doc:
        doc["data"].setdefault("text_column", "text")
        doc["data"].setdefault("label_column", "label")
    for t in doc["targets"]:
        t.setdefault("profile", "auto")
        t.setdefault("shape", "batch=1,sequence=128")
        t.setdefault("iterations", 200)
        t.setdefault("duration", 60.0)
        t.setdefault("max_cv", 0.10)
        if t.get("ssh_config"):
            t["ssh_config"] = str((base / t["ssh_config"]).resolve())
    doc["run_dir"] = str((base / doc["run_dir"]).resolve()) if doc.get("run_dir") else None
    src = doc["source"]
    if not src.startswith("reference:") and src not in _embedded() and not Path(src).is_absolute():
        doc["source"] = str((base / src).resolve())
    if not src.startswith("reference:") and src not in _embedded() and not Path(doc["source"]).exists():
        raise BadInput(f"{path}:{lines.get(('source',), 1)}: source: no such model directory or file: {doc['source']}")
    return Recipe(path.resolve(), doc)


def producer(doc: dict, variant: str) -> str:
    """The stage that makes a variant's artifact: a model's export, or the variant's quantize."""
    v = doc["variants"][variant]
    if v["method"] == "float":
        return export_stage(v.get("model", SOURCE_MODEL))
    return f"quantize:{variant}"


def export_stage(model: str) -> str:
    return "export" if model == SOURCE_MODEL else f"export:{model}"


def reference_variant(doc: dict) -> str:
    """The float variant of the source: accuracy drops and fidelity are measured against it."""
    return next((n for n, v in doc["variants"].items() if v["method"] == "float" and v.get("model", SOURCE_MODEL) == SOURCE_MODEL), "float")


def _embedded() -> tuple[str, ...]:
    from edgedeploy.core.sources import EMBEDDED

    return tuple(EMBEDDED)
