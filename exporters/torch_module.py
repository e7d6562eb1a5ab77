"""Generic ``torch.nn.Module`` sources (``--factory pkg.mod:callable``, TorchScript ``.pt``,
pickled modules with ``--trust-pickle``) exported with torch.onnx: the dynamo exporter
where it works, the TorchScript exporter as fallback; the choice is recorded."""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters import torchlib_registry
from edgedeploy.exporters.safe_load import is_torchscript, load_state_dict, load_torch_pickle

DTYPES = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "bool": "bool",
    "uint8": "uint8",
}
BATCH_NAMES = ("batch", "batch_size", "n", "N")
_UNSUPPORTED = [
    re.compile(r"Exporting the operator '?([\w:.]+)'? to ONNX opset version (\d+) is not supported"),
    re.compile(r"No (?:ONNX function|decompositions?) (?:found|registered) for <?OpOverload\(op='([\w.:]+)'"),
    re.compile(r"[Uu]nsupported (?:FX nodes|operators?)[^\n]*?'([\w.:]+)'"),
]


@dataclass
class InputSpec:
    name: str
    dtype: str
    dims: list  # ints and symbolic names

    @property
    def symbolic(self):
        return [d for d in self.dims if isinstance(d, str)]


def parse_input_spec(text: str) -> InputSpec:
    parts = text.split(":")
    if len(parts) != 3 or not parts[0]:
        raise BadInput(f"--input {text!r}: expected name:dtype:dims, e.g. input:float32:batch,3,224,224")
    name, dtype, dims_text = parts
    if dtype not in DTYPES:
        raise BadInput(f"--input {text!r}: unknown dtype {dtype!r}; use one of {', '.join(sorted(set(DTYPES.values())))}")
    dims = []
    for d in dims_text.split(","):
        d = d.strip()
        if not d:
            raise BadInput(f"--input {text!r}: empty dim")
        if d.isdigit():
            dims.append(int(d))
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", d):
            dims.append(d)
        else:
            raise BadInput(f"--input {text!r}: dim {d!r} must be a positive integer or a name")
    return InputSpec(name, DTYPES[dtype], dims)


def load_factory(ref: str, weights: Path | None, trust_pickle: bool):
    import torch

    if ":" not in ref:
        raise BadInput(f"--factory {ref!r}: expected package.module:callable")
    mod_name, attr = ref.split(":", 1)
    if os.getcwd() not in sys.path:  # like `python -m`, find modules in the working directory
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # any import-time failure is the user's module
        raise BadInput(f"--factory {ref!r}: cannot import {mod_name!r} ({type(exc).__name__}: {exc})") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise BadInput(f"--factory {ref!r}: {mod_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise BadInput(f"--factory {ref!r}: {attr!r} is not callable")
    try:
        model = fn()
    except Exception as exc:  # the user's factory failed: their code, reported as input
        raise BadInput(f"--factory {ref!r}: calling it raised {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(model, torch.nn.Module):
        raise BadInput(f"--factory {ref!r}: returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        state = load_state_dict(weights, trust_pickle)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise BadInput(f"{weights}: does not match the factory's module ({str(exc).splitlines()[0][:200]})") from None
    return model.eval()


def load_pt(path: Path, trust_pickle: bool):
    import torch

    if is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location="cpu").eval(), "torchscript"
        except RuntimeError as exc:
            raise BadInput(f"{path}: broken TorchScript archive ({str(exc).splitlines()[0][:200]})") from None
    obj = load_torch_pickle(path, trust_pickle)
    if isinstance(obj, torch.nn.Module):
        return obj.eval(), "pickle"
    raise BadInput(f"{path}: holds a {type(obj).__name__}, not a module; for a state dict use --factory module:callable --weights {path}")


def example_inputs(specs: list[InputSpec], bind: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = tuple(bind[d] if isinstance(d, str) else d for d in s.dims)
        if s.dtype.startswith("float"):
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
        elif s.dtype == "bool":
            feeds[s.name] = np.ones(shape, dtype=bool)
        else:
            feeds[s.name] = rng.integers(0, 100, size=shape).astype(s.dtype)
    return feeds


def _bindings(specs, batch: int, other: int) -> dict[str, int]:
    return {d: (batch if d in BATCH_NAMES else other) for s in specs for d in s.symbolic}


def torch_runner(model, specs):
    import torch

    def run(feeds):
        with torch.inference_mode():
            out = model(*[torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in specs])
        if isinstance(out, torch.Tensor):
            out = (out,)
        if isinstance(out, dict):
            return {k: v.numpy() for k, v in out.items()}
        return {f"output_{i}" if len(out) > 1 else "output": v.numpy() for i, v in enumerate(out)}

    return run


def unsupported_operator(messages: list[str]) -> str | None:
    for text in messages:
        for pat in _UNSUPPORTED:
            m = pat.search(text)
            if m:
                return m.group(1)
    return None


def export(model, specs: list[InputSpec], stage: Path, opset: int | None) -> dict:
    import torch

    opset = opset or 18
    ex = example_inputs(specs, _bindings(specs, 2, 32), seed=1234)
    args = tuple(torch.from_numpy(ex[s.name]) for s in specs)
    with torch.inference_mode():
        probe = model(*args)
    n_out = len(probe) if isinstance(probe, (tuple, list)) else 1
    output_names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
    dynamic_axes = {s.name: {i: d for i, d in enumerate(s.dims) if isinstance(d, str)} for s in specs}
    first_out_axes = {0: specs[0].dims[0]} if specs and isinstance(specs[0].dims[0], str) else {}
    for o in output_names:
        dynamic_axes[o] = first_out_axes
    target = stage / "model.onnx"
    errors, exporter = [], None
    attempts = [("dynamo", True)] if not isinstance(model, torch.jit.ScriptModule) else []
    attempts.append(("torchscript", False))
    for label, dynamo in attempts:
        for leftover in stage.glob("model.onnx*"):
            leftover.unlink()
        try:
            with warnings.catch_warnings(), torchlib_registry.reused():
                warnings.simplefilter("ignore")
                kwargs = dict(
                    input_names=[s.name for s in specs], output_names=output_names, opset_version=opset, dynamic_axes=dynamic_axes, dynamo=dynamo
                )
                if dynamo:
                    kwargs["verbose"] = False
                    kwargs["report"] = False
                torch.onnx.export(model, args, str(target), **kwargs)
            exporter = label
            break
        except Exception as exc:  # exporter failures come in many types; we keep each message
            errors.append(f"{label}: {type(exc).__name__}: {exc}")
    if exporter is None:
        op = unsupported_operator(errors)
        if op:
            raise BadInput(
                f"operator {op} cannot be exported to ONNX at opset {opset} by either torch.onnx exporter; "
                "replace it, register a custom translation, or try another --opset"
            )
        raise BadInput("torch.onnx could not export the module: " + " | ".join(e.splitlines()[0][:200] for e in errors))
    _name_dims(target, specs, output_names)
    return {
        "family": "module",
        "exporter": f"torch.onnx ({exporter})",
        "exporter_attempts": [e.splitlines()[0][:300] for e in errors],
        "torch_fn": torch_runner(model, specs),
        "cases": [example_inputs(specs, _bindings(specs, 1, 32), 0), example_inputs(specs, _bindings(specs, 3, 24), 1)],
    }


def _name_dims(target: Path, specs: list[InputSpec], output_names: list[str]) -> None:
    """Give the graph inputs the user's symbolic dim names (dynamo calls them s0, s1, ...)."""
    import onnx

    model = onnx.load(str(target))
    rename = {}
    by_name = {s.name: s for s in specs}
    for inp in model.graph.input:
        spec = by_name.get(inp.name)
        if spec is None:
            continue
        for d, want in zip(inp.type.tensor_type.shape.dim, spec.dims):
            if isinstance(want, str) and d.dim_param and d.dim_param != want:
                rename[d.dim_param] = want
    if not rename:
        return
    for vi in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in rename:
                d.dim_param = rename[d.dim_param]
    onnx.save(model, str(target))
