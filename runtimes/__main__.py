"""Device-side entry point: ``python -m edgedeploy.runtimes {check,doctor,run,bench}``.

Needs only the standard library, numpy and onnxruntime. Exit codes: 0 ok, 2 bad job or
input, 3 missing runtime dependency, 4 an unstable result where ``--require-stable``.
Never 255 (ssh reserves it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from .errors import JobError
from .files import write_atomic


def _die(msg: str, code: int) -> None:
    print(f"edgedeploy-runtime: error: {msg}", file=sys.stderr)
    sys.exit(code)


def _check() -> dict:
    import platform

    report = {"python": platform.python_version(), "arch": platform.machine(), "missing": []}
    for mod in ("numpy", "onnxruntime"):
        try:
            m = __import__(mod)
            report[mod] = m.__version__
        except ImportError:
            report["missing"].append(mod)
    try:
        st = os.statvfs(tempfile.gettempdir())
        report["free_disk_mb"] = st.f_bavail * st.f_frsize / 1e6
    except OSError:
        report["free_disk_mb"] = None
    return report


def _write(doc: dict, out: str | None) -> None:
    text = json.dumps(doc, indent=2)
    if not out:
        print(text)
        return
    write_atomic(Path(out), lambda fh: fh.write((text + "\n").encode()))


def _progress(name: str, done: int, total: int) -> None:
    print(f"progress {name} {done}/{total}", file=sys.stderr, flush=True)


MAX_JOB_BYTES = 16 << 20  # a job names models and settings; it is never large


def _parser() -> argparse.ArgumentParser:
    prog = "edgedeploy-runtime" if Path(sys.argv[0]).name == "edgedeploy-runtime" else "python -m edgedeploy.runtimes"
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="print python/arch/numpy/onnxruntime/free disk as JSON; exit 3 if something is missing")
    sub.add_parser("doctor", help="print what 'edgedeploy doctor' judges (CPU, onnxruntime, governor, load, Jetson, thermal state) as JSON")
    r = sub.add_parser("run", help="run a job file and write results JSON")
    r.add_argument("job")
    r.add_argument("-o", "--output")
    r.add_argument("--require-stable", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--deadline", type=float, help="kill this run after so many seconds (exit 124)")
    r.add_argument("--pid-file", help="write this process's pid here (so a host can kill it)")
    b = sub.add_parser("bench", help="benchmark one or more .onnx files directly")
    b.add_argument("models", nargs="+")
    b.add_argument("--shape", default="batch=1,sequence=128")
    b.add_argument("--inputs", help=".npz of real input arrays")
    b.add_argument("--scenario", default="single-stream", choices=("single-stream", "offline", "server"))
    b.add_argument("--iterations", type=int, default=200)
    b.add_argument("--duration", type=float, default=60.0)
    b.add_argument("--warmup", type=int, default=20)
    b.add_argument("--threads", type=int, default=0)
    b.add_argument("--concurrency", type=int, default=1)
    b.add_argument("--qps", type=float)
    b.add_argument("--latency-budget", type=float)
    b.add_argument("--providers", default="CPUExecutionProvider")
    b.add_argument("-o", "--output")
    b.add_argument("--require-stable", action="store_true")
    b.add_argument("--quiet", action="store_true")
    return ap


def _arm_deadline(seconds: float) -> None:
    """Stop the whole process with exit 124 after ``seconds`` (a hung session cannot outlive it)."""
    import signal

    def expired(signum, frame):
        print(f"edgedeploy-runtime: error: deadline of {seconds:.0f} s exceeded; stopped", file=sys.stderr, flush=True)
        os._exit(124)

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(1, int(seconds)))


def _job(args) -> tuple[dict, Path]:
    """The job to run and the folder its relative paths start from: a job file (size-bounded), or
    the ``bench`` flags."""
    from .inputs import parse_shape

    if args.cmd == "run":
        try:
            with open(args.job, "rb") as fh:
                raw = fh.read(MAX_JOB_BYTES + 1)
            if len(raw) > MAX_JOB_BYTES:
                raise ValueError(f"over {MAX_JOB_BYTES:,} bytes")
            job = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            _die(f"{args.job}: cannot read job file ({str(exc)[:200]})", 2)
        if not isinstance(job, dict):
            _die(f"{args.job}: a job file is a JSON object", 2)
        return job, Path(args.job).resolve().parent
    job = {
        "models": [{"name": Path(m).stem, "path": m} for m in args.models],
        "shape": parse_shape(args.shape),
        "inputs_npz": args.inputs,
        "scenario": args.scenario,
        "iterations": args.iterations,
        "duration_s": args.duration,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "qps": args.qps,
        "latency_budget_ms": args.latency_budget,
        "profile": {"name": None, "run": {"intra_op_threads": args.threads, "providers": args.providers.split(",")}},
    }
    return job, Path.cwd()


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    if args.cmd == "doctor":  # before the dependency check: a device without onnxruntime is a finding
        from .facts import collect

        print(json.dumps(collect()))
        return
    report = _check()
    if args.cmd == "check":
        print(json.dumps(report, indent=2))
    if report["missing"]:
        _die(f"missing {', '.join(report['missing'])}; install with: python -m pip install {' '.join(report['missing'])}", 3)
    if args.cmd == "check":
        return

    from .errors import ModelError, ProviderError
    from .inputs import ShapeError
    from .job import run_job

    if getattr(args, "pid_file", None):
        Path(args.pid_file).write_text(str(os.getpid()))
    if getattr(args, "deadline", None):
        _arm_deadline(args.deadline)
    try:
        job, base = _job(args)
        doc = run_job(job, base, progress=None if args.quiet else _progress)
    except (JobError, ShapeError, ModelError) as exc:
        _die(str(exc), 2)
    except ProviderError as exc:
        _die(str(exc), 3)
    except KeyboardInterrupt:
        _die("interrupted", 130)
    try:
        _write(doc, args.output)
    except JobError as exc:
        _die(str(exc), 2)
    except OSError as exc:  # disk full, read-only, permissions: the environment (never 255, which ssh uses)
        _die(f"{exc.filename or args.output}: {exc.strerror or exc}", 3)
    if args.require_stable and not all(r["stable"] for r in doc["results"]):
        from .stats import UNSTABLE_CV  # numpy is loaded by now; `check` runs before it may be

        bad = [f"{r['name']} cv {r['latency_ms']['cv']:.1%}" for r in doc["results"] if not r["stable"]]
        _die(f"unstable result(s): {', '.join(bad)} (CV over {UNSTABLE_CV:.0%})", 4)


if __name__ == "__main__":
    main()
