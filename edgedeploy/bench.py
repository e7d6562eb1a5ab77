"""Host-side ``edgedeploy bench``: artifacts -> job -> the device-side harness, plus an
optional PyTorch eager baseline timed interleaved with the ONNX models."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field

from edgedeploy.core.adopt import open_model
from edgedeploy.core.artifact import Artifact
from edgedeploy.core.errors import BadInput, InvalidBenchmark
from edgedeploy.core.options import coerce
from edgedeploy.device import remote as remote_mod
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.device.options import DEFAULT_TIMEOUT_S, RemoteOptions
from edgedeploy.device.profiles import load, run_settings
from edgedeploy.exporters import huggingface, torch_module
from edgedeploy.measure_options import DEFAULT_SHAPE, MeasureOptions
from edgedeploy.runtimes import inputs as rt_inputs
from edgedeploy.runtimes import job as rt_job
from edgedeploy.runtimes.limits import check_threads
from edgedeploy.runtimes.measure import Timed
from edgedeploy.runtimes.stats import UNSTABLE_CV

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
    inputs_npz=None,
    scenario="single-stream",
    iterations=200,
    duration_s=60.0,
    warmup=20,
    warmup_s=5.0,
    concurrency=1,
    qps=None,
    latency_budget_ms=None,
    threads=None,
    seed=0,
    local: bool = True,
    save_outputs=None,
    providers=(),
    allow_fallback: bool = False,
    names: list[str] | None = None,
    model_runs: list[dict] | None = None,
    generate: dict | None = None,
    fill_dims: dict | None = None,
    shape_strict: bool = True,
) -> dict:

    run = run_settings(profile) if local else dict(profile["run"])
    if threads:
        run["intra_op_threads"] = threads
    if providers:
        run["providers"] = list(providers)
    run["allow_fallback"] = allow_fallback
    names = names or _unique_names(arts)
    runs = model_runs or [artifact_run(a, threads) for a in arts]
    return {
        "models": [
            {"name": n, "path": str(a.model_path), "vocab_size": a.manifest.get("vocab_size"), "artifact_digest": a.digest}
            | ({"run": r} if r else {})
            | ({"max_positions": _max_positions(a)} if generate else {})
            | _seq2seq(a, generate)
            for n, a, r in zip(names, arts, runs)
        ],
        "shape": shape,
        "fill_dims": fill_dims or {},
        "shape_strict": shape_strict,
        "inputs_npz": str(inputs_npz) if inputs_npz else None,
        "scenario": scenario,
        "generate": generate,
        "iterations": iterations,
        "duration_s": duration_s,
        "warmup": warmup,
        "warmup_s": warmup_s,
        "concurrency": concurrency,
        "qps": qps,
        "latency_budget_ms": latency_budget_ms,
        "seed": seed,
        "profile": {"name": profile["name"], "run": run},
        "save_outputs": str(save_outputs) if save_outputs else None,
    }


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
    run = art.manifest.get("run")
    if isinstance(run, dict) and threads:
        run = {k: v for k, v in run.items() if k != "intra_op_threads"}
    return run or None


def _seq2seq(art: Artifact, generate) -> dict:
    """An encoder-decoder's other graphs (by role) and start token, for a generation job."""
    if not art.is_seq2seq:
        art.require_single_graph("bench")
        return {}
    if not generate:
        raise BadInput(f"{art.path}: an encoder-decoder is timed as generation: add --generate (TTFT is the encoder + the first decoder step)")
    gen = art.manifest.get("generation") if isinstance(art.manifest.get("generation"), dict) else {}
    graphs = {role: str(art.path / name) for role, name in art.graph_files.items()}
    return {"graphs": graphs, "decoder_start_token_id": gen.get("decoder_start_token_id")}


def _max_positions(art: Artifact):
    gen = art.manifest.get("generation")
    return gen.get("max_positions") if isinstance(gen, dict) else None


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

    src = art.manifest["source"]
    if src.get("kind") == "huggingface" and src.get("path"):
        model = huggingface.load_model(Path(src["path"]), src["task"])
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}

        def run():
            with torch.inference_mode():
                model(**tensors)
    elif src.get("kind") == "factory":
        model = torch_module.load_factory(src["name"], Path(src["weights"]) if src.get("weights") else None, False)
        args = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]

        def run():
            with torch.inference_mode():
                model(*args)
    else:
        raise BadInput(f"{art.path}: --baseline torch needs a Hugging Face or --factory source; this artifact came from {src.get('kind')}")
    torch.set_num_threads(threads)
    batch = next(iter(feeds.values())).shape[0]
    return Timed(f"pytorch-eager ({src.get('name')})", run, batch)


def _job_settings(opts: MeasureOptions) -> dict:
    """The harness job's settings; real inputs and saved outputs are ``BenchOptions`` only (not recipe targets)."""
    return {
        "inputs_npz": getattr(opts, "inputs", None),
        "scenario": opts.scenario,
        "iterations": opts.iterations,
        "duration_s": opts.duration,
        "warmup": opts.warmup,
        "concurrency": opts.concurrency,
        "qps": opts.qps,
        "latency_budget_ms": opts.latency_budget,
        "threads": opts.threads,
        "save_outputs": getattr(opts, "save_outputs", None),
        "providers": opts.providers,
        "allow_fallback": opts.allow_fallback,
        "generate": {"prompt_tokens": opts.prompt_tokens, "new_tokens": opts.new_tokens} if opts.generate else None,
    }


def bench(
    artifacts: list, options: MeasureOptions | None = None, *, progress=None, remote: dict | None = None, models: dict | None = None, **settings
) -> dict:
    """Measure ``artifacts`` on this host, or on ``remote`` ({"target": ssh.Host, "python",
    "timeout_s", "keep_remote", "bwlimit_kbps"}) over SSH with the same harness. Settings are a
    ``MeasureOptions`` (or ``BenchOptions``) or its fields as keyword arguments. ``models``
    ({"names": [...], "runs": [{session settings} | None, ...]}) names each artifact and gives
    it its own session settings (``edgedeploy tune``)."""
    opts = options if options is not None else coerce(MeasureOptions, settings, "bench")
    arts = [open_model(a) for a in artifacts]
    if not arts:
        raise BadInput("give at least one ARTIFACT")
    job_settings = {**_job_settings(opts), **({"names": models.get("names"), "model_runs": models.get("runs")} if models else {})}
    if remote is not None:
        doc = _bench_remote(arts, resolve_profile(opts.profile), opts.shape, opts.baseline, progress, remote, **job_settings)
        return {**doc, "options": opts.recorded()}
    baseline = opts.baseline
    if opts.threads is not None and (problem := check_threads(opts.threads, "--threads", allow_zero=False)):
        raise BadInput(problem + " (this host)")
    profile = load(resolve_profile(opts.profile) or resolve_profile("auto"))
    try:
        job = make_job(arts, profile, rt_inputs.parse_shape(opts.shape), **shape_settings(arts, opts.shape), **job_settings)
        job = rt_job.normalize(job)
        interleave = job["scenario"] == "single-stream" and (len(arts) > 1 or baseline == "torch")
        prepared, interleave = rt_job.prepare(job, interleave)
    except (rt_inputs.ShapeError, rt_job.JobError) as exc:
        raise BadInput(str(exc)) from None
    extra = []
    if baseline == "torch":
        if job["generate"]:
            raise BadInput("--baseline torch times one forward pass; it does not apply to --generate")
        if job["scenario"] != "single-stream":
            raise BadInput("--baseline torch is measured interleaved in the single-stream scenario only")
        extra.append(torch_baseline_target(arts[0], prepared[0]["feeds"], job["profile"]["run"]["intra_op_threads"]))
    measured = rt_job.execute(job, prepared, interleave, extra, progress)
    doc = rt_job.assemble(job, prepared, measured[: len(prepared)], interleave)
    if job["save_outputs"]:
        rt_job.save_outputs(prepared, Path(job["save_outputs"]))
    for res in measured[len(prepared) :]:
        res.update(
            {
                "model_path": None,
                "model_size_bytes": None,
                "init_ms": None,
                "peak_rss_mb": doc["results"][0]["peak_rss_mb"],
                "baseline": "torch",
                "session": {"framework": "torch", "threads": job["profile"]["run"]["intra_op_threads"]},
            }
        )
        doc["results"].append(res)
    return {**_finish(doc, arts, len(extra), interleave), "options": opts.recorded()}


def _bench_remote(arts, profile_name, shape, baseline, progress, remote, **opts) -> dict:
    if baseline:
        raise BadInput("--baseline torch runs on the host; it cannot be combined with --host")
    if not profile_name:
        raise BadInput("--host needs --profile naming the device (e.g. rpi4, rpi5, jetson-orin-nano)")
    profile = load(profile_name)
    try:
        job = make_job(arts, profile, rt_inputs.parse_shape(shape), local=False, **shape_settings(arts, shape), **opts)
    except rt_inputs.ShapeError as exc:
        raise BadInput(str(exc)) from None
    doc = remote_mod.bench_remote(
        remote["target"],
        arts,
        job,
        inputs_npz=opts.get("inputs_npz"),
        python=remote.get("python", "python3"),
        timeout_s=remote.get("timeout_s", DEFAULT_TIMEOUT_S),
        keep_remote=remote.get("keep_remote", False),
        bwlimit_kbps=remote.get("bwlimit_kbps"),
        progress=progress,
        save_outputs=opts.get("save_outputs"),
        cache_models=remote.get("cache_models", False),
    )
    return _finish(doc, arts, 0, doc.get("interleaved", False))


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
    return doc


def require_stable(doc: dict) -> None:
    if doc["unstable"]:
        raise InvalidBenchmark(
            f"unstable result(s) (CV over {UNSTABLE_CV:.0%}): {', '.join(doc['unstable'])}; close other programs, raise --iterations, or pin the CPU governor"
        )
