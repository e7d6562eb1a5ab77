"""Which execution provider ran each node, read from ONNX Runtime's profiler: one profiled run in
a session of its own (so the measured session stays unprofiled and its first inference cold).
``session.get_providers()`` only says which providers the session has; a TensorRT or CUDA
session still runs the nodes those providers cannot take on the CPU, and that is what this
counts. Device-side: standard library and onnxruntime."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from . import session
from .errors import ProviderError

CPU = "CPUExecutionProvider"
MAX_PROFILE_BYTES = 256 << 20
NAMES_SHOWN = 20


def wanted_providers(run: dict) -> list[str]:
    return list(run.get("providers") or [CPU])


def measure(model_path: str, run: dict, feeds: dict) -> dict:
    """{"nodes", "by_provider": {provider: nodes}, "on_cpu": names of nodes the CPU ran when
    another provider was asked for (at most 20), "summary"} from one profiled run on ``feeds``."""
    chosen, _ = session.choose_providers(wanted_providers(run))
    opts = session.session_options(run, allow_spinning=False)
    tmp = tempfile.mkdtemp(prefix="edgedeploy-placement-")
    try:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "placement")
        sess = session.load(model_path, opts, chosen, session.provider_options(run, chosen), list(run.get("disabled_optimizers") or []))
        sess.run(None, feeds)
        path = sess.end_profiling()
        if os.path.getsize(path) > MAX_PROFILE_BYTES:
            return {"nodes": None, "by_provider": {}, "on_cpu": [], "summary": "profile too large to read"}
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summarize(events, wanted_providers(run))


def summarize(events: list, wanted: list[str]) -> dict:
    """Per-node providers from profiler events (``cat: Node``, ``<node>_kernel_time``)."""
    where: dict[str, str] = {}
    for e in events if isinstance(events, list) else []:
        if isinstance(e, dict) and e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            where[str(e["name"])[: -len("_kernel_time")]] = str((e.get("args") or {}).get("provider", "?"))
    by: dict[str, int] = {}
    for provider in where.values():
        by[provider] = by.get(provider, 0) + 1
    accelerated = [p for p in wanted if p != CPU]
    on_cpu = sorted(n for n, p in where.items() if p == CPU) if accelerated else []
    parts = [f"{n} on {p}" for p, n in sorted(by.items(), key=lambda kv: -kv[1])]
    summary = f"{len(where)} nodes: " + ", ".join(parts) if where else "no node events in the profile"
    if on_cpu:
        summary += f" (on the CPU: {', '.join(on_cpu[:NAMES_SHOWN])}{', ...' if len(on_cpu) > NAMES_SHOWN else ''})"
    return {"nodes": len(where), "by_provider": by, "on_cpu": on_cpu[:NAMES_SHOWN], "cpu_fallback_nodes": len(on_cpu), "summary": summary}


def require_provider(placement: dict, model: str) -> None:
    """``--require-provider``: a node that fell back to the CPU from the requested accelerator is exit 3."""
    if placement.get("cpu_fallback_nodes"):
        raise ProviderError(
            f"model {model!r}: {placement['cpu_fallback_nodes']} node(s) fell back to the CPU ({placement['summary']}); "
            "they have no kernel in the requested provider: export with another opset, keep those ops out, or drop --require-provider"
        )
