"""Where a benchmark job runs: one ``Target`` interface with a local and an SSH implementation.

``bench``, ``tune`` and recipes build a job (``bench.make_job``) and hand it to a target; none
of them branches on where it runs. A target gives the job's starting session settings and its
core count, checks the options it cannot honour, and runs the job with the same device-side
harness (``runtimes/job.py``), here or on the device over SSH. The PyTorch eager baseline is
served by the local target only: the model's PyTorch source lives on this host. A fleet is
one ``SSHTarget`` per device, measured in parallel (``bench_fleet.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgedeploy.core.errors import BadInput
from edgedeploy.device import remote as remote_mod
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.device.options import DEFAULT_TIMEOUT_S
from edgedeploy.device.profiles import run_settings
from edgedeploy.device.ssh import Host
from edgedeploy.runtimes import job as rt_job
from edgedeploy.runtimes.environment import cpuinfo
from edgedeploy.runtimes.limits import check_threads


class Target:
    """Runs a job on ``arts`` and returns the harness's results document."""

    label: str = "this host"

    def profile_name(self, name: str | None) -> str:
        """The device profile the job is built with (``name`` resolved, or this target's default)."""
        raise NotImplementedError

    def check(self, opts) -> None:
        """Exit 2 for measuring options this target cannot honour, before any work."""

    def identity(self) -> dict:
        """What makes a measurement here comparable to an earlier one (a recipe stage's key)."""
        raise NotImplementedError

    def run_settings(self, profile: dict) -> dict:
        """The session settings a job here starts from (the profile's ``run`` section, fitted to this host when local)."""
        raise NotImplementedError

    def cores(self, profile: dict) -> int:
        """The CPU cores the target has (tune's thread-count candidates)."""
        raise NotImplementedError

    def run(self, job: dict, arts: list, *, progress=None, baseline=None) -> dict:
        raise NotImplementedError


def engine_cache() -> Path:
    """Where this host keeps TensorRT engines between runs."""
    return Path(os.environ.get("EDGEDEPLOY_CACHE") or Path.home() / ".cache" / "edgedeploy") / "trt-engines"


class LocalTarget(Target):
    """This host, in this process: the harness's own steps, plus the PyTorch baseline when asked
    (``baseline``: a callable ``(feeds, threads) -> Timed``, timed interleaved with the models)."""

    def profile_name(self, name: str | None) -> str:
        return name or resolve_profile("auto")

    def identity(self) -> dict:
        return {"local_cpu": cpuinfo()["cpu_model"]}

    def run_settings(self, profile: dict) -> dict:
        return run_settings(profile)

    def cores(self, profile: dict) -> int:
        return os.cpu_count() or 1

    def check(self, opts) -> None:
        if opts.threads is not None and (problem := check_threads(opts.threads, "--threads", allow_zero=False)):
            raise BadInput(problem + " (this host)")

    def run(self, job: dict, arts: list, *, progress=None, baseline=None) -> dict:
        for m in job["models"]:  # TensorRT engines outlive the run, keyed per model (runtimes/trt.py)
            m.setdefault("engine_cache_root", str(engine_cache()))
        try:
            job = rt_job.normalize(job)
            interleave = job["scenario"] == "single-stream" and (len(arts) > 1 or baseline is not None)
            prepared, interleave = rt_job.prepare(job, interleave)
        except rt_job.JobError as exc:
            raise BadInput(str(exc)) from None
        threads = job["profile"]["run"]["intra_op_threads"]
        extra = [baseline(prepared[0]["feeds"], threads)] if baseline is not None else []
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
                    "session": {"framework": "torch", "threads": threads},
                }
            )
            doc["results"].append(res)
        return doc


class SSHTarget(Target):
    """A device over SSH: the bundle (runtime, models, job) is uploaded and run there by the same
    harness; models may stay in the device's content-addressed cache between runs."""

    local = False

    def __init__(
        self,
        host: Host,
        *,
        python: str = "python3",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        keep_remote: bool = False,
        bwlimit_kbps=None,
        cache_models=True,
    ):
        self.host, self.python, self.timeout_s, self.keep_remote, self.bwlimit_kbps = host, python, timeout_s, keep_remote, bwlimit_kbps
        self.label, self.cache_models = host.label, cache_models

    def identity(self) -> dict:
        return {"host": self.label}

    def run_settings(self, profile: dict) -> dict:
        return dict(profile["run"])  # the device fits thread counts to its own CPUs (runtimes/job.py)

    def cores(self, profile: dict) -> int:
        return int(profile["target"]["cores"])

    def profile_name(self, name: str | None) -> str:
        if not name:
            raise BadInput("--host needs --profile naming the device (e.g. rpi4, rpi5, jetson-orin-nano)")
        return name

    def check(self, opts) -> None:
        if getattr(opts, "baseline", None):
            raise BadInput("--baseline torch runs on the host; it cannot be combined with --host/--hosts")

    def run(self, job: dict, arts: list, *, progress=None, baseline=None) -> dict:
        if baseline is not None:
            raise BadInput("--baseline torch runs on the host; it cannot be combined with --host/--hosts")
        return remote_mod.bench_remote(
            self.host,
            arts,
            job,
            inputs_npz=job.get("inputs_npz"),
            python=self.python,
            timeout_s=self.timeout_s,
            keep_remote=self.keep_remote,
            bwlimit_kbps=self.bwlimit_kbps,
            progress=progress,
            save_outputs=job.get("save_outputs"),
            cache_models=self.cache_models,
        )


def ssh_target(entry: dict, opts) -> SSHTarget:
    """One device: an inventory entry's own settings (host, identity_file, remote_venv,
    remote_python) over ``opts`` (``RemoteOptions``)."""
    host = Host.parse(
        entry["host"],
        config=str(opts.ssh_config) if opts.ssh_config else None,
        accept_new_host_key=opts.accept_new_host_key,
        connect_timeout=opts.connect_timeout,
        options=[f"IdentityFile={entry['identity_file']}", "IdentitiesOnly=yes"] if entry.get("identity_file") else [],
    )
    venv = entry.get("remote_venv") or opts.remote_venv
    python = f"{venv.rstrip('/')}/bin/python" if venv else entry.get("remote_python") or opts.remote_python
    cache = getattr(opts, "device_cache", True)
    return SSHTarget(host, python=python, timeout_s=opts.timeout, keep_remote=opts.keep_remote, bwlimit_kbps=opts.bwlimit, cache_models=cache)


def target_for(host: str | None, opts) -> Target:
    """The target a ``host`` setting names: this host when it is empty, else that device."""
    return ssh_target({"host": host}, opts) if host else LocalTarget()
