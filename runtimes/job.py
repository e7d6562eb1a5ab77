"""A job file (JSON) fully describes one benchmark run; ``run_job`` executes it and
returns the results document. Device-side: standard library, numpy, onnxruntime."""

from __future__ import annotations

import os
from pathlib import Path

from . import batch_search, device_state, environment, files, generate, inputs, limits, loadgen, measure, placement, seq2seq, session, trt
from .errors import JobError, ModelError
from .names import unique_file_names

SCENARIOS = ("single-stream", "multi-stream", "offline", "server")
JOB_SCHEMA = 1
DEFAULTS = {
    "scenario": "single-stream",
    "shape": {"batch": 1, "sequence": 128},
    "fill_dims": {},  # exact dim names bound where the model has them and shape does not (sizes validation ran at)
    "shape_strict": True,  # a shape key the model has no dim for is an error (an explicit --shape)
    "seed": 0,
    "iterations": 200,
    "duration_s": 60.0,
    "warmup": 20,
    "warmup_s": 5.0,
    "concurrency": 1,
    "samples_per_query": 8,  # multi-stream: samples per query (LoadGen's default for vision)
    "max_batch": 64,  # offline: the largest batch the search tries (doubling from the shape's)
    "qps": None,
    "latency_budget_ms": None,
    "cooldown_c": None,  # wait for the hottest thermal zone to cool to this before each model
    "placement": None,  # per-node providers from one profiled run: None = when an accelerator is asked for
    "require_provider": False,  # a node that falls back to the CPU from the requested accelerator is exit 3
    "loadgen": False,  # drive the scenario with MLPerf's LoadGen (mlcommons-loadgen on the device)
    "block": 10,
    "pause_ms": 10.0,
    "inputs_npz": None,
    "save_outputs": None,
    "generate": None,  # {"prompt_tokens": P, "new_tokens": N}: time greedy generation with the KV cache
}


def normalize(job: dict, base: Path | None = None) -> dict:
    job = {**DEFAULTS, **job}
    if job["scenario"] not in SCENARIOS:
        raise JobError(f"scenario {job['scenario']!r}: use one of {', '.join(SCENARIOS)}")
    if not job.get("models"):
        raise JobError("job has no models")
    bounds = {
        "iterations": (1, None),
        "warmup": (0, None),
        "concurrency": (1, 256),
        "samples_per_query": (1, 1024),
        "max_batch": (1, 4096),
        "block": (1, None),
    }
    for key, (lo, hi) in bounds.items():
        v = job[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise JobError(f"{key} must be a positive integer, got {v!r:.80}")
        if hi is not None and v > hi:
            raise JobError(f"{key} {v}: at most {hi}")
    for key in ("duration_s", "warmup_s", "qps", "latency_budget_ms", "cooldown_c"):
        v = job[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf")):
            raise JobError(f"{key} must be a positive number, got {v!r:.80}")
    if job["scenario"] == "server" and not job.get("qps"):
        raise JobError("the server scenario needs qps (queries per second)")
    if job["scenario"] == "server":
        _check_server_length(job["qps"], job["duration_s"])
    for key in ("shape", "fill_dims"):
        job[key] = _dims(job[key], key)
    for key in ("require_provider", "loadgen"):
        if not isinstance(job[key], bool):
            raise JobError(f"{key} must be true or false, got {job[key]!r:.80}")
    if job["placement"] is not None and not isinstance(job["placement"], bool):
        raise JobError(f"placement must be true, false or null, got {job['placement']!r:.80}")
    if not isinstance(job["shape_strict"], bool):
        raise JobError(f"shape_strict must be true or false, got {job['shape_strict']!r:.80}")
    if job["loadgen"] and job["generate"]:
        raise JobError("--loadgen drives the latency and throughput scenarios; generation is timed by the built-in loop")
    job["generate"] = generate.check_settings(job["generate"])
    if job["generate"] and (job["scenario"] != "single-stream" or job["inputs_npz"] or job["save_outputs"]):
        raise JobError("generation is timed in the single-stream scenario, from its own prompt (no inputs .npz, no saved outputs)")
    base = base or Path.cwd()
    for m in job["models"]:
        m["run"] = _model_run(m.get("run"), m.get("name"))
        if m.get("precision") not in (None, "fp32", "fp16", "quantized"):
            raise JobError(f"model {m.get('name')!r}: precision {m.get('precision')!r:.40}: fp32, fp16 or quantized")
        if m.get("engine_cache_root") is not None and not (isinstance(m["engine_cache_root"], str) and os.path.isabs(m["engine_cache_root"])):
            raise JobError(f"model {m.get('name')!r}: engine_cache_root must be an absolute folder, got {m['engine_cache_root']!r:.80}")
        m["path"] = _model_file(m["path"], base)
        if m.get("graphs") is not None:
            m["graphs"] = _graphs(m, base, job["generate"])
    if job["inputs_npz"]:
        p = Path(job["inputs_npz"])
        job["inputs_npz"] = str(p if p.is_absolute() else base / p)
    job.setdefault("profile", {"name": None, "run": {}})
    _check_profile_run(job["profile"])
    return job


def _check_profile_run(profile) -> None:
    """The thread counts of the profile's run section, against this device's CPUs (before any session)."""
    run = profile.get("run") if isinstance(profile, dict) else None
    if not isinstance(run, dict):
        raise JobError(f"profile: run must be a mapping, got {run!r:.80}")
    for key in ("intra_op_threads", "inter_op_threads"):
        if key in run:
            problem = limits.check_threads(run[key], f"run.{key}")
            if problem:
                raise JobError(f"profile {profile.get('name') or ''}: {problem}".replace("profile : ", "profile: "))


def _model_file(path, base: Path) -> str:
    if not isinstance(path, str) or not path:
        raise JobError(f"model path must be a file name, got {path!r:.80}")
    p = Path(path)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise JobError(f"model {p}: no such file")
    return str(p)


def _graphs(m: dict, base: Path, gen) -> dict:
    """A seq2seq model's graphs: exactly the three roles, each an existing file; generation only."""
    g = m["graphs"]
    if not isinstance(g, dict) or set(g) != set(seq2seq.ROLES):
        raise JobError(f"model {m.get('name')!r}: graphs must map exactly {', '.join(seq2seq.ROLES)} to files, got {g!r:.120}")
    if not gen:
        raise JobError(f"model {m.get('name')!r}: an encoder-decoder is timed as generation (generate: prompt_tokens, new_tokens)")
    return {role: _model_file(g[role], base) for role in seq2seq.ROLES}


# What one model of a job may set for its own session (``edgedeploy tune`` measures these).
MODEL_RUN = {"intra_op_threads": int, "graph_optimization_level": str, "cpu_mem_arena": bool, "disabled_optimizers": list}


def _model_run(run, name=None) -> dict:
    who = f"model {name!r}" if name else "a model"
    if run is None:
        return {}
    if not isinstance(run, dict):
        raise JobError(f"{who}: its run settings must be a mapping, got {type(run).__name__}")
    for k, v in run.items():
        kind = MODEL_RUN.get(k)
        if kind is None:
            raise JobError(f"{who}: unknown run setting {k!r}; known: {', '.join(MODEL_RUN)}")
        if type(v) is not kind:
            raise JobError(f"{who}: run setting {k}: got {v!r:.80}")
        problem = limits.check_threads(v, f"run setting {k}", allow_zero=False) if kind is int else None
        if problem:
            raise JobError(f"{who}: {problem}")
        if k == "graph_optimization_level" and v not in session.OPT_LEVELS:
            raise JobError(f"{who}: graph_optimization_level {v!r}: use one of {', '.join(session.OPT_LEVELS)}")
        if k == "disabled_optimizers" and (len(set(map(str, v))) != len(v) or not all(d in session.DISABLEABLE for d in v)):
            raise JobError(f"{who}: disabled_optimizers {v!r:.80}: each at most once, from {', '.join(session.DISABLEABLE)}")
    return dict(run)


def _feeds(sess, model: dict, job: dict):
    try:
        sig = session.signature(sess)
    except ModelError as exc:
        raise ModelError(f"{model['path']}: {exc}") from None
    if job["inputs_npz"]:
        return inputs.load_npz(job["inputs_npz"], sig)
    names = inputs.symbolic_dims(sig)
    shape = {**{d: v for d, v in job["fill_dims"].items() if d in names}, **job["shape"]}
    return inputs.generate(sig, shape, seed=job["seed"], vocab_size=model.get("vocab_size"), strict=job["shape_strict"])


def _dims(value, key: str) -> dict[str, int]:
    """A job's {dim name: size}: names up to 128 characters, sizes 1..MAX_DIM."""
    if not isinstance(value, dict) or len(value) > 64:
        raise JobError(f"{key} must map up to 64 dim names to sizes, got {value!r:.80}")
    for d, v in value.items():
        if not isinstance(d, str) or not 0 < len(d) <= 128 or type(v) is not int or not 0 < v <= inputs.MAX_DIM:
            raise JobError(f"{key}: {d!r:.80}={v!r:.40}: a dim name and a size from 1 to {inputs.MAX_DIM:,}")
    return dict(value)


MAX_UNASKED_SERVER_S = 600


def _check_server_length(qps: float, duration_s: float) -> None:
    """A server run lasts at least the 662 arrivals p99 needs; one that would run past both
    --duration and 10 minutes is refused rather than started (a longer --duration allows it)."""
    seconds = measure.server_queries(qps, duration_s) / qps
    if seconds > max(duration_s, MAX_UNASKED_SERVER_S):
        raise JobError(
            f"qps {qps:g}: the {measure.MIN_SAMPLES[99]} queries p99 needs would arrive over about {seconds:,.0f} s; "
            f"raise --qps (at least {measure.MIN_SAMPLES[99] / max(duration_s, MAX_UNASKED_SERVER_S):.2f}) or --duration to {seconds:.0f}"
        )


def _at_batch(job: dict, batch: int) -> dict:
    return {**job, "shape": {**job["shape"], "batch": batch}}


def _run_at(sess, m: dict, job: dict, batch: int):
    """One inference at ``batch`` (None when the model's batch dimension is fixed)."""
    feeds = _feeds(sess, m, _at_batch(job, batch))
    if _batch_of(feeds) != batch:
        return None
    names = [o.name for o in sess.get_outputs()]
    return lambda: sess.run(names, feeds)


def _wants_placement(job: dict, run_cfg: dict) -> bool:
    if job["placement"] is not None:
        return bool(job["placement"])
    return job["require_provider"] or any(p != placement.CPU for p in placement.wanted_providers(run_cfg))


def split_threads(run: dict, copies: int) -> dict:
    """Each of ``copies`` concurrent sessions gets its share of the intra-op threads (the run's,
    or one per CPU of the device when it leaves the count to onnxruntime), at least one: N
    sessions split the device's threads instead of each taking all of them."""
    if copies <= 1:
        return run
    total = run.get("intra_op_threads") or os.cpu_count() or 1
    return {**run, "intra_op_threads": max(1, total // copies)}


def _batch_of(feeds) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def prepare(job: dict, interleave: bool | None = None):
    """Create sessions, inputs and timing targets for every model of a (normalized) job."""
    run_cfg = dict(job["profile"].get("run") or {})
    if interleave is None:
        interleave = job["scenario"] == "single-stream" and len(job["models"]) > 1
    if interleave:
        # An idle session's spinning thread pool steals cores from the one being timed.
        run_cfg["allow_spinning"] = False
    prepared = []
    for m in job["models"]:
        copies = job["concurrency"] if job["scenario"] in ("offline", "server") else 1
        if job["generate"]:
            run = trt.for_model({**run_cfg, **m.get("run", {})}, m, session.ort.__version__)
            try:
                if m.get("graphs"):
                    made = {role: session.create(path, run) for role, path in m["graphs"].items()}
                    sess, info = made["encoder"]
                    info = {**info, "init_ms": sum(i["init_ms"] for _, i in made.values())}
                    gen = seq2seq.target(m["name"], {r: s for r, (s, _) in made.items()}, m, job["generate"], job["seed"])
                else:
                    sess, info = session.create(m["path"], run)
                    gen = generate.target(m["name"], sess, m, job["generate"], job["seed"])
            except JobError as exc:
                raise JobError(f"model {m['name']!r}: {exc}") from None
            prepared.append({"model": m, "targets": [gen["timed"]], "session": info, "feeds": gen["feeds"], "sess": sess, "generation": gen})
            continue
        prepared.append(_prepare_model(job, m, run_cfg, copies))
    return prepared, interleave


def _prepare_model(job: dict, m: dict, run_cfg: dict, copies: int) -> dict:
    """``copies`` sessions of one model, its feeds (at the batch offline's search chose), the
    per-node placement when asked for, and a timing target per session."""
    run = trt.for_model({**run_cfg, **m.get("run", {})}, m, session.ort.__version__)
    sessions = [session.create(m["path"], split_threads(run, copies)) for _ in range(copies)]
    sess, info = sessions[0]
    feeds = _feeds(sess, m, job)
    if _wants_placement(job, run_cfg):
        info["placement"] = placement.measure(m["path"], run, feeds)
        if job["require_provider"]:
            placement.require_provider(info["placement"], m["name"])
    if job["scenario"] == "offline" and job["max_batch"] > _batch_of(feeds) and not job["inputs_npz"]:
        info["batch_search"] = batch_search.search(_batch_of(feeds), job["max_batch"], lambda b: _run_at(sess, m, job, b))
        feeds = _feeds(sess, m, _at_batch(job, info["batch_search"]["batch"]))
    names = [o.name for o in sess.get_outputs()]
    targets = [measure.Timed(m["name"], (lambda s=s: s.run(names, feeds)), _batch_of(feeds)) for s, _ in sessions]
    return {"model": m, "targets": targets, "session": info, "feeds": feeds, "sess": sess}


def execute(job: dict, prepared: list[dict], interleave: bool, extra_targets=(), progress=None) -> list[dict]:
    """Measure every prepared model (plus ``extra_targets``, e.g. a PyTorch baseline, which
    are only supported interleaved); return one result per target, models first."""
    common = dict(iterations=job["iterations"], duration_s=job["duration_s"], warmup=job["warmup"], warmup_s=job["warmup_s"], progress=progress)
    if interleave and not job["loadgen"]:  # LoadGen drives one model at a time
        targets = [p["targets"][0] for p in prepared] + list(extra_targets)
        return _watched(job, lambda: measure.interleaved(targets, block=job["block"], pause_ms=job["pause_ms"], **common))
    return [_watched(job, lambda p=p: [_measure_one(job, p, common)])[0] for p in prepared]


def _watched(job: dict, measure_fn) -> list[dict]:
    """``measure_fn``'s results, each with the device's state before and after (and the
    cool-down before, with ``cooldown_c``): THROTTLED when the device cannot vouch for them."""
    cooldown = device_state.cool_down(job["cooldown_c"]) if job["cooldown_c"] is not None else None
    before = device_state.read()
    results = measure_fn()
    after = device_state.read()
    why = device_state.problems(before, after)
    for r in results:
        r["device_state"] = {"before": before, "after": after, "cooldown": cooldown, "throttled": why}
    return results


def _measure_one(job: dict, p: dict, common: dict) -> dict:
    """One prepared model through the job's scenario (LoadGen's scheduler with ``loadgen``)."""
    if job["loadgen"]:
        return loadgen.run(p["targets"], job)
    if job["scenario"] == "single-stream":
        return measure.single_stream(p["targets"][0], **common)
    if job["scenario"] == "multi-stream":
        return measure.multi_stream(p["targets"][0], job["samples_per_query"], **common)
    if job["scenario"] == "offline":
        return measure.offline(p["targets"], **common)
    return measure.server(p["targets"], job["qps"], latency_budget_ms=job["latency_budget_ms"], seed=job["seed"], **common)


def assemble(job: dict, prepared: list[dict], measured: list[dict], interleave: bool) -> dict:
    rss = environment.peak_rss_mb()
    for p, res in zip(prepared, measured):
        res.update(
            {
                "model_path": p["model"]["path"],
                "model_size_bytes": sum(_model_size(f) for f in (p["model"].get("graphs") or {"model": p["model"]["path"]}).values()),
                "init_ms": p["session"]["init_ms"],
                "peak_rss_mb": rss,
                "inputs": {k: list(v.shape) for k, v in p["feeds"].items()},
                "session": p["session"],
            }
        )
        if "generation" in p:
            g = p["generation"]
            res["generation"] = generate.summarize(g["records"], res["samples"], {**job["generate"], **g.get("lengths", {})}, g["io_binding"])
    return {
        "schema": JOB_SCHEMA,
        "scenario": job["scenario"],
        "interleaved": interleave,
        "settings": {k: job[k] for k in DEFAULTS},
        "profile": job["profile"].get("name"),
        "results": measured,
        "environment": environment.describe(prepared[0]["session"], job["profile"].get("name")),
        "measured": "measured",
        "peak_rss_note": "peak resident memory of the benchmark process (all models it loaded)",
    }


def save_outputs(prepared: list[dict], dest: Path) -> list[str]:
    """One inference per model on its benchmark inputs, saved as ``dest/<model name>.npz``
    (inputs and outputs), so results from different devices can be compared numerically."""

    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    names = output_file_names([p["model"]["name"] for p in prepared])
    try:
        for p, name in zip(prepared, names):
            sess = p["sess"]
            outs = sess.run(None, p["feeds"])
            arrays = {f"input:{k}": v for k, v in p["feeds"].items()}
            arrays.update({f"output:{o.name}": v for o, v in zip(sess.get_outputs(), outs)})
            save_npz(dest / name, arrays)
    except BaseException:
        if created:  # a folder made for this run and left empty is not left behind
            try:
                dest.rmdir()
            except OSError:
                pass
        raise
    return names


def save_npz(path: Path, arrays: dict) -> None:
    """``np.savez`` through ``files.write_atomic``: a full disk leaves neither a partial nor an
    empty file, and the error names ``path``."""
    import numpy as np

    files.write_atomic(path, lambda fh: np.savez(fh, **arrays))


def output_file_names(model_names: list[str]) -> list[str]:
    """The ``.npz`` each model's saved outputs go to: safe and distinct whatever the names are
    (the host fetches these names, never ones a device reports)."""
    return unique_file_names(model_names, ".npz")


def run_job(job: dict, base: Path | None = None, progress=None) -> dict:
    job = normalize(job, base)
    prepared, interleave = prepare(job)
    measured = execute(job, prepared, interleave, progress=progress)
    doc = assemble(job, prepared, measured, interleave)
    if job["save_outputs"]:
        doc["outputs"] = save_outputs(prepared, (base or Path.cwd()) / job["save_outputs"])
    return doc


def _model_size(path: str) -> int:
    p = Path(path)
    total = p.stat().st_size
    for extra in p.parent.glob(p.name + "*.data"):
        total += extra.stat().st_size
    data = p.parent / (p.name + "_data")
    if data.exists():
        total += data.stat().st_size
    return total
