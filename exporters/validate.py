"""Validation of an exported ONNX model against the PyTorch model it came from.

One comparator: every output, every case, elementwise ``|onnx - torch| <= atol + rtol*|torch|``
(numpy.allclose semantics). The result is an object with the numbers in it, and a failure
is a failure: the caller exits 1 and does not publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgedeploy.core.errors import ValidationFailed
from edgedeploy.runtimes.session import Runner

# Defaults by model family: transformer stacks accumulate more float reordering error
# (fused kernels, softmax) than small CNNs/MLPs.
DEFAULT_TOLERANCES = {
    "transformer": {"atol": 1e-4, "rtol": 1e-3},
    "module": {"atol": 1e-5, "rtol": 1e-4},
}


@dataclass
class OutputComparison:
    name: str
    shape: list
    max_abs_diff: float
    max_rel_diff: float
    passed: bool

    def as_dict(self):
        return {"name": self.name, "shape": self.shape, "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff, "passed": self.passed}


@dataclass
class ValidationResult:
    atol: float
    rtol: float
    cases: list = field(default_factory=list)  # [{"inputs": {name: shape}, "outputs": [OutputComparison]}]
    # Set when a case failed and PyTorch, run again on the same feeds, disagreed with itself:
    # the model samples at inference (random masking, noise, dropout), so no export can match it.
    unstable: OutputComparison | None = None

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(o.passed for c in self.cases for o in c["outputs"])

    @property
    def max_abs_diff(self) -> float:
        return max((o.max_abs_diff for c in self.cases for o in c["outputs"]), default=float("nan"))

    def worst(self) -> OutputComparison | None:
        outs = [o for c in self.cases for o in c["outputs"]]
        return max(outs, key=lambda o: o.max_abs_diff / (self.atol or 1.0), default=None)

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": max((o.max_rel_diff for c in self.cases for o in c["outputs"]), default=float("nan")),
            "atol": self.atol,
            "rtol": self.rtol,
            "cases": [{"inputs": c["inputs"], "outputs": [o.as_dict() for o in c["outputs"]]} for c in self.cases],
        }


def compare_arrays(name: str, got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> OutputComparison:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return OutputComparison(name, list(got.shape), float("inf"), float("inf"), False)
    diff = np.abs(got - want)
    finite = np.isfinite(got).all() and np.isfinite(want).all()
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(want), atol)).max()) if diff.size else 0.0
    ok = bool(finite and np.all(diff <= atol + rtol * np.abs(want)))
    return OutputComparison(name, list(got.shape), max_abs, max_rel, ok)


def validate(onnx_path, torch_fn, cases: list[dict], atol: float, rtol: float) -> ValidationResult:
    """Run ORT and ``torch_fn`` (feeds -> {output name: ndarray}) on each case and compare."""
    model = Runner(onnx_path)
    names = model.names
    input_names = {i.name for i in model.session.get_inputs()}
    result = ValidationResult(atol=atol, rtol=rtol)
    for feeds in cases:
        feeds = {k: v for k, v in feeds.items() if k in input_names}
        try:
            got = model(feeds)
        except Exception as exc:  # onnxruntime's Fail, InvalidArgument, RuntimeException
            if "onnxruntime" not in type(exc).__module__:
                raise
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            detail = str(exc).strip().splitlines()[0].split("Status Message: ")[-1][:240] if str(exc).strip() else type(exc).__name__
            raise ValidationFailed(f"validation failed: ONNX Runtime cannot run the exported model on inputs {shapes} ({detail})") from None
        want = torch_fn(feeds)
        outs = []
        for i, name in enumerate(names):
            ref = want.get(name) if isinstance(want, dict) else None
            values = list(want.values()) if isinstance(want, dict) else list(want)
            if ref is None and i >= len(values):
                raise ValidationFailed(f"validation failed: the ONNX output {name!r} has no counterpart among PyTorch's {len(values)} outputs")
            if ref is None:
                ref = values[i]
            outs.append(compare_arrays(name, got[i], ref, atol, rtol))
        if result.unstable is None and not all(o.passed for o in outs):
            result.unstable = _self_disagreement(torch_fn, feeds, want, atol, rtol)
        result.cases.append({"inputs": {k: list(v.shape) for k, v in feeds.items()}, "outputs": outs})
    return result


def _self_disagreement(torch_fn, feeds: dict, first, atol: float, rtol: float) -> OutputComparison | None:
    """The worst output of a second PyTorch run on ``feeds`` that differs from the first, if any."""
    again = torch_fn(feeds)
    if isinstance(first, dict):
        pairs = ((k, (a, again.get(k))) for k, a in first.items())
    else:
        pairs = ((str(i), (a, b)) for i, (a, b) in enumerate(zip(first, again)))
    bad = [compare_arrays(k, b, a, atol, rtol) for k, (a, b) in pairs if b is not None]
    bad = [c for c in bad if not c.passed]
    return max(bad, key=lambda c: c.max_abs_diff, default=None)
