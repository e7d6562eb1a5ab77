"""Host-side ``edgedeploy bench``: artifacts -> job -> the device-side harness, plus an
optional PyTorch eager baseline timed interleaved with the ONNX models."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from pydantic import Field

from edgedeploy.core.adopt import open_model
from edgedeploy.core.artifact import Artifact
from edgedeploy.core.errors import BadInput, InvalidBenchmark, ValidationFailed
from edgedeploy.core.options import coerce
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.device.options import RemoteOptions
from edgedeploy.device.profiles import load, run_settings
from edgedeploy.exporters import huggingface, torch_module
from edgedeploy.measure_options import DEFAULT_SHAPE, MeasureOptions
from edgedeploy.runtimes import inputs as rt_inputs
from edgedeploy.runtimes import job as rt_job
from edgedeploy.runtimes.measure import Timed
from edgedeploy.runtimes.stats import UNSTABLE_CV
from edgedeploy.targets import LocalTarget, Target

log = logging.getLogger("edgedeploy")


class BenchOptions(MeasureOptions, RemoteOptions):
    """Every setting of ``edgedeploy bench``."""

    inputs: Path | None = Field(None, description="Real inputs from an .npz instead of generated ones.")
    host: list[str] = Field(default_factory=list, description="Run on user@host[:port] or a ~/.ssh/config Host over SSH. Repeatable.")
    hosts: Path | None = Field(None, description="Inventory of devices: an Ansible inventory (INI or YAML) or edgedeploy's YAML list.")
    limit_hosts: str | None = Field(
        None, min_length=1, description="With --hosts: only these hosts or groups (like Ansible's --limit; ',' or ':' separated, globs)."
    )
    parallel: int = Field(4, ge=1, description="Devices measured at once in a fleet.")
    require_stable: bool = Field(False, description=f"Exit 4 when any result has CV over {UNSTABLE_CV:.0%}.")
    save_outputs: Path | None = Field(None, description="Save each model's inputs and outputs (<model>.npz) here, to compare devices.")


def make_job(
    arts: list[Artifact],
    profile: dict,
    shape: dict,
    *,
    run: dict | None = None,
    threads=None,
    providers=(),
    allow_fallback: bool = False,
    names: list[str] | None = None,
    model_runs: list[dict] | None = None,
    generate: dict | None = None,
    inputs_npz=None,
    save_outputs=None,
    **measuring,
) -> dict:
    """The harness's job for ``arts``: the models, the session settings (the profile's ``run``
    with ``threads`` and ``providers`` over it) and the ``measuring`` settings, each a key of
    ``runtimes.job.DEFAULTS`` (scenario, iterations, duration_s, qps, ...; the harness fills the rest)."""
    unknown = set(measuring) - set(rt_job.DEFAULTS)
    if unknown:
        raise TypeError(f"make_job: unknown job settings {sorted(unknown)}")
    run = dict(run if run is not None else run_settings(profile))
    if threads:
        run["intra_op_threads"] = threads
    if providers:
        run["providers"] = list(providers)
    run["allow_fallback"] = allow_fallback
    models = _job_models(arts, names or _unique_names(arts), model_runs or [artifact_run(a, threads) for a in arts], generate)
    return {
        **measuring,
        "models": models,
        "shape": shape,
        "generate": generate,
        "inputs_npz": str(inputs_npz) if inputs_npz else None,
        "profile": {"name": profile["name"], "run": run},
        "save_outputs": str(save_outputs) if save_outputs else None,
    }


def _job_models(arts: list[Artifact], names: list[str], runs: list, generate) -> list[dict]:
    """Each model of a job: its name and path, the session settings it asks for, and what generation needs."""
    return [
        {"name": n, "path": str(a.model_path), "vocab_size": a.manifest.vocab_size, "artifact_digest": a.digest, "precision": precision(a)}
        | ({"run": r} if r else {})
        | ({"max_positions": a.manifest.max_positions} if generate else {})
        | _seq2seq(a, generate)
        for n, a, r in zip(names, arts, runs)
    ]


def precision(art: Artifact) -> str:
    """fp32 for a float artifact (a GPU target keeps it in FP32: it is the reference), fp16 or quantized."""
    q = art.manifest.quantization
    return "fp32" if q is None else "fp16" if q.method == "fp16" else "quantized"


def shape_settings(arts: list[Artifact], shape: str) -> dict:
    """The job's ``fill_dims`` and ``shape_strict``: every symbolic dim but batch and sequence
    that --shape leaves open gets the size the first validation case ran it at (an image's
    height, SAM's points per image), so a model with dims of its own benches without naming
    them. The default --shape is not strict (a ViT has no sequence); one given must name dims
    the model has."""
    fill: dict[str, int] = {}
    for a in arts:
        for d, v in a.validated_dims().items():
            fill.setdefault(d, v)
    return {"fill_dims": fill, "shape_strict": shape != DEFAULT_SHAPE}


def artifact_run(art: Artifact, threads: int | None = None):
    """The session settings an artifact asks for (``manifest.run``, written by ``edgedeploy tune``),
    validated with the job on the device; ``--threads`` wins over its thread count."""
    return art.manifest.run.for_job(threads) if art.manifest.run is not None else None


def _seq2seq(art: Artifact, generate) -> dict:
    """An encoder-decoder's other graphs (by role) and start token, for a generation job."""
    if not art.is_seq2seq:
        art.require_single_graph("bench")
        return {}
    if not generate:
        raise BadInput(f"{art.path}: an encoder-decoder is timed as generation: add --generate (TTFT is the encoder + the first decoder step)")
    graphs = {role: str(art.path / name) for role, name in art.graph_files.items()}
    return {"graphs": graphs, "decoder_start_token_id": art.manifest.generation.decoder_start_token_id if art.manifest.generation else None}


def _unique_names(arts: list[Artifact]) -> list[str]:
    names = []
    for a in arts:
        n = a.name
        while n in names:
            n += "'"
        names.append(n)
    return names


def torch_baseline_target(art: Artifact, feeds: dict, threads: int):
    """Eager PyTorch target for the artifact's source model (the lineage's root)."""
    import numpy as np
    import torch

    src = art.manifest.source
    if src.kind == "huggingface" and src.path:
        model = huggingface.load_model(Path(src.path), src.task)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}

        def run():
            with torch.inference_mode():
                model(**tensors)
    elif src.kind == "factory":
        model = torch_module.load_factory(src.name, Path(src.weights) if src.weights else None, False)
        args = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]

        def run():
            with torch.inference_mode():
                model(*args)
    else:
        raise BadInput(f"{art.path}: --baseline torch needs a Hugging Face or --factory source; this artifact came from {src.kind}")
    torch.set_num_threads(threads)
    batch = next(iter(feeds.values())).shape[0]
    return Timed(f"pytorch-eager ({src.name})", run, batch)


def _job_settings(opts: MeasureOptions) -> dict:
    """The harness job's settings; real inputs and saved outputs are ``BenchOptions`` only (not recipe targets)."""
    return {
        "inputs_npz": getattr(opts, "inputs", None),
        "scenario": opts.scenario,
        "iterations": opts.iterations,
        "duration_s": opts.duration,
        "warmup": opts.warmup,
        "concurrency": opts.concurrency,
        "samples_per_query": opts.samples_per_query,
        "max_batch": opts.max_batch,
        "qps": opts.qps,
        "latency_budget_ms": opts.latency_budget,
        "cooldown_c": opts.cooldown_c,
        "require_provider": opts.require_provider,
        "loadgen": opts.loadgen,
        "threads": opts.threads,
        "save_outputs": getattr(opts, "save_outputs", None),
        "providers": opts.providers,
        "allow_fallback": opts.allow_fallback,
        "generate": {"prompt_tokens": opts.prompt_tokens, "new_tokens": opts.new_tokens} if opts.generate else None,
    }


def bench(
    artifacts: list, options: MeasureOptions | None = None, *, target: Target | None = None, progress=None, models: dict | None = None, **settings
) -> dict:
    """Measure ``artifacts`` on ``target`` (this host by default, or a device: ``targets.py``)
    with the device-side harness. Settings are a ``MeasureOptions`` (or ``BenchOptions``) or its
    fields as keyword arguments. ``models`` ({"names": [...], "runs": [{session settings} | None,
    ...]}) names each artifact and gives it its own session settings (``edgedeploy tune``)."""
    opts = options if options is not None else coerce(MeasureOptions, settings, "bench")
    target = target if target is not None else LocalTarget()
    arts = [open_model(a) for a in artifacts]
    if not arts:
        raise BadInput("give at least one ARTIFACT")
    job_settings = {**_job_settings(opts), **({"names": models.get("names"), "model_runs": models.get("runs")} if models else {})}
    target.check(opts)
    profile = load(target.profile_name(resolve_profile(opts.profile)))
    try:
        run = target.run_settings(profile)
        job = make_job(arts, profile, rt_inputs.parse_shape(opts.shape), run=run, **shape_settings(arts, opts.shape), **job_settings)
    except rt_inputs.ShapeError as exc:
        raise BadInput(str(exc)) from None
    baseline = None
    if opts.baseline == "torch":
        if job["generate"]:
            raise BadInput("--baseline torch times one forward pass; it does not apply to --generate")
        if job["scenario"] != "single-stream":
            raise BadInput("--baseline torch is measured interleaved in the single-stream scenario only")
        baseline = functools.partial(torch_baseline_target, arts[0])
    doc = target.run(job, arts, progress=progress, baseline=baseline)
    return {**_finish(doc, arts, 1 if baseline else 0, doc.get("interleaved", False)), "options": opts.recorded()}


def _finish(doc: dict, arts, n_extra: int, interleave: bool) -> dict:
    first = doc["results"][0]["latency_ms"]["p50"]
    for r, a in zip(doc["results"], arts + [None] * n_extra):
        r["ratio_to_first"] = r["latency_ms"]["p50"] / first if first else None
        if a is not None:
            r["artifact"] = str(a.path)
            r["artifact_digest"] = a.digest
    if interleave:
        doc["interleave_note"] = (
            "measured interleaved with thread-pool spinning off, so targets do not steal each other's cores; absolute times are non-spinning latencies, ratios compare like with like"
        )
    doc["unstable"] = [r["name"] for r in doc["results"] if not r["stable"]]
    doc["throttled"] = [r["name"] for r in doc["results"] if throttled(r)]
    return doc


def throttled(result: dict) -> list[str]:
    """Why the device cannot vouch for ``result`` (throttle flags, capped clocks; empty when it can)."""
    return (result.get("device_state") or {}).get("throttled") or []


def require_unthrottled(doc: dict) -> None:
    """Exit 4 when a timing was taken while the device throttled or ran under-clocked."""
    bad = [r for r in doc["results"] if throttled(r)]
    if bad:
        why = "; ".join(throttled(bad[0])[:3])
        raise InvalidBenchmark(
            f"THROTTLED: {', '.join(r['name'] for r in bad)} measured while the device throttled ({why}); "
            "let it cool (--cooldown-c), check its power supply and cooling, and measure again"
        )


def require_latency_budget(doc: dict) -> None:
    """Exit 1 when a server run's p99 (from arrival) missed --latency-budget."""
    missed = [r for r in doc["results"] if r.get("budget_held") is False]
    if missed:
        r = missed[0]
        raise ValidationFailed(
            f"latency budget missed: {r['name']} p99 {r['latency_ms']['p99']:.2f} ms from arrival at {r['target_qps']:g} qps, "
            f"budget {r['latency_budget_ms']:g} ms; lower --qps, raise --concurrency or use a faster variant"
        )


def require_stable(doc: dict) -> None:
    if doc["unstable"]:
        raise InvalidBenchmark(
            f"unstable result(s) (CV over {UNSTABLE_CV:.0%}): {', '.join(doc['unstable'])}; close other programs, raise --iterations, or pin the CPU governor"
        )
