"""Device profiles: JSON data files validated against one schema before anything runs.

Lookup order for a NAME: a path to a .json file, then user directories from
``EDGEDEPLOY_PROFILES`` (os.pathsep-separated), then the bundled ``device_profiles/``.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path

from edgedeploy.core.bounded import read_bounded
from edgedeploy.core.errors import BadInput
from edgedeploy.quantize import methods
from edgedeploy.runtimes.limits import MAX_THREADS, THREADS_PER_CPU, max_threads

KNOWN_PROVIDERS = {
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "XnnpackExecutionProvider",
    "ACLExecutionProvider",
    "ArmNNExecutionProvider",
    "OpenVINOExecutionProvider",
    "DnnlExecutionProvider",
    "CoreMLExecutionProvider",
    "QNNExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "NnapiExecutionProvider",
    "DmlExecutionProvider",
}
NUM = (int, float)
OPT = type(None)
SCHEMA = {
    "name": str,
    "description": str,
    "target": {"arch": str, "cpu": str, "cores": int, "isa": list, "memory_gb": NUM, "accelerator": (str, OPT)},
    "run": {"providers": list, "intra_op_threads": int, "inter_op_threads": int, "graph_optimization_level": str, "allow_spinning": bool},
    "quantization": {
        "preferred": str,
        "format": str,
        "activation_type": str,
        "weight_type": str,
        "per_channel": bool,
        "reduce_range": bool,
        "symmetric_activations": bool,
        "symmetric_weights": bool,
        "int4_block_size": int,
        "int4_accuracy_level": int,
        "fp16": bool,
        "int8_faster": bool,
        "notes": str,
    },
    "peaks": {"compute_unit": str, "fp32_gflops": NUM, "int8_gops": NUM, "memory_bandwidth_gbs": NUM, "source": str},
}
OPTIONAL = {"peaks": {"fp16_gflops"}, "run": {"provider_options"}}
CHOICES = {
    ("target", "arch"): {"x86_64", "aarch64", "armv7l"},
    ("run", "graph_optimization_level"): {"disable", "basic", "extended", "all"},
    ("quantization", "preferred"): methods.names,  # the registry as it is when a profile is read
    ("quantization", "format"): {"QDQ", "QOperator"},
    ("quantization", "activation_type"): {"int8", "uint8"},
    ("quantization", "weight_type"): {"int8", "uint8"},
    ("quantization", "int4_block_size"): {16, 32, 64, 128, 256},
    ("quantization", "int4_accuracy_level"): {0, 1, 2, 3, 4},
    ("peaks", "compute_unit"): {"cpu", "gpu"},
}

# (section, key) -> (low, high, "gt" for low < value, "ge" for low <= value); every number is finite.
RANGES = {
    ("target", "cores"): (1, 4096, "ge"),
    ("target", "memory_gb"): (0, 1 << 20, "gt"),
    ("run", "intra_op_threads"): (0, MAX_THREADS, "ge"),
    ("run", "inter_op_threads"): (0, MAX_THREADS, "ge"),
    ("peaks", "fp32_gflops"): (0, 1e9, "gt"),
    ("peaks", "int8_gops"): (0, 1e9, "gt"),
    ("peaks", "memory_bandwidth_gbs"): (0, 1e7, "gt"),
    ("peaks", "fp16_gflops"): (0, 1e9, "gt"),
}


def _allowed(choices) -> set:
    return set(choices()) if callable(choices) else choices


def _type_name(t) -> str:
    ts = t if isinstance(t, tuple) else (t,)
    return " or ".join("null" if x is OPT else x.__name__ for x in ts)


def validate(doc, where: str) -> dict:
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: a profile must be a JSON object")

    def check(obj, schema, prefix):
        for key, want in schema.items():
            field = f"{prefix}{key}"
            if key not in obj:
                raise BadInput(f"{where}: missing field '{field}'")
            value = obj[key]
            if isinstance(want, dict):
                if not isinstance(value, dict):
                    raise BadInput(f"{where}: field '{field}' must be an object")
                check(value, want, field + ".")
            elif isinstance(value, bool) and want is not bool and bool not in (want if isinstance(want, tuple) else (want,)):
                raise BadInput(f"{where}: field '{field}' must be {_type_name(want)}, got a boolean")
            elif not isinstance(value, want):
                raise BadInput(f"{where}: field '{field}' must be {_type_name(want)}, got {type(value).__name__}")
        unknown = set(obj) - set(schema) - OPTIONAL.get(prefix.rstrip("."), set())
        if unknown and prefix:
            raise BadInput(f"{where}: unknown field '{prefix}{sorted(unknown)[0]}'")

    check(doc, SCHEMA, "")
    for (section, key), allowed in CHOICES.items():
        allowed = _allowed(allowed)
        value = doc[section][key]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value not in allowed:
            raise BadInput(f"{where}: field '{section}.{key}' is {doc[section][key]!r}; allowed: {', '.join(map(str, sorted(allowed, key=str)))}")
    for field, items in (("run.providers", doc["run"]["providers"]), ("target.isa", doc["target"]["isa"])):
        bad = next((x for x in items if not isinstance(x, str)), None)
        if bad is not None:
            raise BadInput(f"{where}: field '{field}' holds {bad!r}; expected names (strings)")
    for p in doc["run"]["providers"]:
        if p not in KNOWN_PROVIDERS:
            raise BadInput(f"{where}: field 'run.providers' names unknown execution provider {p!r}")
    popts = doc["run"].get("provider_options", {})
    if not isinstance(popts, dict) or any(
        p not in doc["run"]["providers"] or not isinstance(o, dict) or not all(isinstance(v, (str, int, float, bool)) for v in o.values())
        for p, o in popts.items()
    ):
        raise BadInput(f"{where}: field 'run.provider_options' must map providers of run.providers to {{option: value}}")
    if not doc["run"]["providers"]:
        raise BadInput(f"{where}: field 'run.providers' is empty")
    for (section, key), (lo, hi, what) in RANGES.items():
        value = doc[section].get(key)
        if value is None and key in OPTIONAL.get(section, set()):
            continue
        if isinstance(value, bool) or not isinstance(value, NUM):
            raise BadInput(f"{where}: field '{section}.{key}' must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or not (lo < value if what == "gt" else lo <= value) or value > hi:
            op = ">" if what == "gt" else ">="
            raise BadInput(f"{where}: field '{section}.{key}' is {value!r}; must be a finite number {op} {lo} and <= {hi:g}")
    cap = max_threads(doc["target"]["cores"])
    for key in ("intra_op_threads", "inter_op_threads"):
        if doc["run"][key] > cap:
            raise BadInput(
                f"{where}: field 'run.{key}' is {doc['run'][key]}; at most {cap} ({THREADS_PER_CPU} per core of target.cores={doc['target']['cores']})"
            )
    return doc


MAX_PROFILE_BYTES = 1 << 20


def _read(path: Path) -> dict:
    try:
        doc = json.loads(read_bounded(path, MAX_PROFILE_BYTES, "profile").decode("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInput(f"{path}: not a readable JSON profile ({exc})") from None
    validate(doc, str(path))
    doc["_path"] = str(path)
    return doc


def _dirs() -> list[Path]:
    user = [Path(p) for p in os.environ.get("EDGEDEPLOY_PROFILES", "").split(os.pathsep) if p]
    bundled = Path(str(resources.files("edgedeploy.device_profiles")))
    return user + [bundled]


def available() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in _dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.json")):
                found.setdefault(f.stem, f)
    return found


def load(name_or_path: str) -> dict:
    p = Path(name_or_path)
    if p.suffix == ".json" or os.sep in name_or_path:
        if not p.is_file():
            raise BadInput(f"{name_or_path}: no such profile file")
        return _read(p)
    found = available()
    if name_or_path not in found:
        raise BadInput(f"unknown profile {name_or_path!r}; available: {', '.join(sorted(found))} (or a path to a .json profile)")
    return _read(found[name_or_path])


def run_settings(profile: dict) -> dict:
    """The profile's run section with 0 threads resolved to this host's core count, so
    the value actually used is explicit in every result."""
    run = dict(profile["run"])
    if run.get("intra_op_threads", 0) == 0:
        run["intra_op_threads"] = os.cpu_count() or 1
    return run


def json_schema() -> dict:
    """The JSON Schema of a profile, derived from ``SCHEMA``, ``CHOICES`` and ``RANGES`` (the
    declarations ``validate`` checks), so the ranges are visible to editors and users."""
    types = {str: {"type": "string"}, int: {"type": "integer"}, bool: {"type": "boolean"}, list: {"type": "array"}, OPT: {"type": "null"}}

    def one(t) -> dict:
        if t is NUM:
            return {"type": "number"}
        if isinstance(t, tuple):
            return {"anyOf": [one(x) for x in t]}
        return dict(types[t])

    def obj(schema: dict, section: str | None) -> dict:
        props = {}
        for key, want in schema.items():
            if isinstance(want, dict):
                props[key] = obj(want, key)
                continue
            prop = one(want)
            if (section, key) in CHOICES:
                prop["enum"] = sorted(_allowed(CHOICES[(section, key)]), key=str)
            if (section, key) in RANGES:
                lo, hi, what = RANGES[(section, key)]
                prop["exclusiveMinimum" if what == "gt" else "minimum"] = lo
                prop["maximum"] = hi
            props[key] = prop
        for key in OPTIONAL.get(section or "", set()):
            props.setdefault(
                key, {"type": "number", "exclusiveMinimum": RANGES[(section, key)][0]} if (section, key) in RANGES else {"type": "object"}
            )
        return {"type": "object", "properties": props, "required": sorted(schema), "additionalProperties": section is None}

    out = obj(SCHEMA, None)
    out["properties"]["run"]["description"] = f"Thread counts: 0 is one per core; at most {THREADS_PER_CPU} per core of target.cores."
    return out
