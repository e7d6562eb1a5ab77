"""ONNX Runtime sessions built from a profile's ``run`` section.

Providers are tried in the profile's order; those not available in this onnxruntime
build are skipped and recorded, and the providers the session actually uses are read
back from the session.
"""

from __future__ import annotations

import time

import onnxruntime as ort

from . import generate, limits
from .errors import JobError, ModelError, ProviderError

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# ONNX Runtime graph transformers a run may switch off (``disabled_optimizers``). ORT ignores a
# name it does not know, so only names checked to change a graph are accepted. SkipLayerNormFusion:
# ORT 1.32's CPU SkipLayerNormalization kernel is slower than LayerNormalization plus Add (about
# 0.16 ms against 0.08 ms on 1x128x384 on this project's 2-core host).
DISABLEABLE = ("SkipLayerNormFusion", "MatMulIntegerToFloatFusion", "DynamicQuantizeMatMulFusion")


def session_options(run: dict, allow_spinning: bool | None = None) -> ort.SessionOptions:
    for key in ("intra_op_threads", "inter_op_threads"):
        problem = limits.check_threads(run.get(key, 0), f"run.{key}")
        if problem:
            raise JobError(problem)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = int(run.get("intra_op_threads", 0))
    opts.inter_op_num_threads = int(run.get("inter_op_threads", 1))
    opts.graph_optimization_level = OPT_LEVELS[run.get("graph_optimization_level", "all")]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_cpu_mem_arena = bool(run.get("cpu_mem_arena", True))
    spin = run.get("allow_spinning", True) if allow_spinning is None else allow_spinning
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    return opts


def choose_providers(wanted: list[str]) -> tuple[list[str], list[str]]:
    available = ort.get_available_providers()
    chosen = [p for p in wanted if p in available]
    skipped = [p for p in wanted if p not in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen, skipped


def create(model_path: str, run: dict, allow_spinning: bool | None = None):
    """Return (session, info) where info records providers, fallback and init time."""
    wanted = list(run.get("providers") or ["CPUExecutionProvider"])
    chosen, skipped = choose_providers(wanted)
    opts = session_options(run, allow_spinning)
    t0 = time.perf_counter()
    disabled = list(run.get("disabled_optimizers") or [])
    sess = load(model_path, opts, chosen, provider_options(run, chosen), disabled)
    init_ms = (time.perf_counter() - t0) * 1e3
    missing = [p for p in wanted if p not in sess.get_providers()]
    if missing and not run.get("allow_fallback", False):
        raise ProviderError(
            f"requested execution provider(s) {', '.join(missing)} not available in this onnxruntime "
            f"({ort.__version__}: {', '.join(ort.get_available_providers())}); install the matching onnxruntime build, "
            "or pass --allow-fallback to run on what is there"
        )
    info = {
        "init_ms": init_ms,
        "providers_requested": wanted,
        "providers_unavailable": skipped,
        "fallback": missing,
        "providers_used": sess.get_providers(),
        "intra_op_threads": opts.intra_op_num_threads,
        "inter_op_threads": opts.inter_op_num_threads,
        "graph_optimization_level": run.get("graph_optimization_level", "all"),
        "allow_spinning": opts.get_session_config_entry("session.intra_op.allow_spinning") == "1",
        "cpu_mem_arena": opts.enable_cpu_mem_arena,
        "disabled_optimizers": disabled,
    }
    return sess, info


def cpu_session(model_path):
    """A plain CPU session with ORT's warnings silenced, for numerical checks (not timing)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return load(model_path, opts, ["CPUExecutionProvider"])


def provider_options(run: dict, chosen: list[str]) -> list[dict]:
    """Per-provider options from the profile's ``run.provider_options`` (TensorRT fp16 and engine
    cache, CUDA device id), aligned with the providers the session is given, as strings."""
    given = run.get("provider_options") or {}
    return [{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in given.get(p, {}).items()} for p in chosen]


def load(model_path, opts, providers, options=None, disabled_optimizers=()):
    """An InferenceSession; a model ONNX Runtime refuses (unknown op, bad graph) is a ``ModelError``."""
    unknown = [d for d in disabled_optimizers if d not in DISABLEABLE]
    if unknown:  # ORT would ignore them silently
        raise ValueError(f"unknown optimizer(s) to disable: {', '.join(map(str, unknown))}; known: {', '.join(DISABLEABLE)}")
    try:
        return ort.InferenceSession(
            str(model_path), opts, providers=providers, provider_options=options, disabled_optimizers=list(disabled_optimizers) or None
        )
    except Exception as exc:  # onnxruntime's pybind errors: Fail, InvalidGraph, NotImplemented, ...
        if isinstance(exc, (MemoryError, KeyboardInterrupt)):
            raise
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{model_path}: ONNX Runtime cannot load this model ({detail[:300]})") from None


class Runner:
    """Feeds in, outputs out: one CPU session for numerical work (fidelity, accuracy, evaluation,
    export validation, saved device outputs). ``outputs`` picks which outputs (default: all)."""

    def __init__(self, model_path, outputs: list[int] | None = None):
        self.session = cpu_session(model_path)
        every = [o.name for o in self.session.get_outputs()]
        self.names = every if outputs is None else [every[i] for i in outputs]
        self.decoder = any(i.name.startswith(generate.PAST) for i in self.session.get_inputs())

    def __call__(self, feeds: dict) -> list:
        if self.decoder:  # a KV-cache decoder scores text as a prefill from an empty past
            feeds = generate.prefill_feeds(self.session, feeds)
        return self.session.run(self.names, feeds)

    def first(self, feeds: dict):
        """The first selected output."""
        return self(feeds)[0]


def signature(sess) -> list[dict]:
    """Input signature (names, numpy dtypes, symbolic dims) read from the session."""
    types = {
        "tensor(float)": "float32",
        "tensor(float16)": "float16",
        "tensor(double)": "float64",
        "tensor(int64)": "int64",
        "tensor(int32)": "int32",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
        "tensor(bool)": "bool",
        "tensor(int16)": "int16",
        "tensor(uint16)": "uint16",
        "tensor(uint32)": "uint32",
        "tensor(uint64)": "uint64",
    }
    out = []
    for i in sess.get_inputs():
        if i.type not in types:  # strings, sequences, maps, optionals, bfloat16, float8: nothing to generate or feed
            raise ModelError(f"input {i.name!r} has type {i.type}; edgedeploy feeds numeric tensors only ({', '.join(sorted(set(types.values())))})")
        dims = [d if isinstance(d, (int, str)) and d is not None else "?" for d in i.shape]
        out.append({"name": i.name, "dtype": types[i.type], "shape": dims})
    return out
