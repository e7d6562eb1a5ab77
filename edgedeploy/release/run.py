"""``edgedeploy run RECIPE.yaml``: compress steps -> export -> quantize variants -> eval -> bench -> report,
each stage cached by content, then the gate. Writes ``summary.json`` for CI."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from edgedeploy.core.artifact import tool_versions, utc_now
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput, EdgeDeployError
from edgedeploy.release.pipeline import Runner
from edgedeploy.release.recipe import load
from edgedeploy.release.report import build as build_report
from edgedeploy.release.report.collect import REPORT_SCHEMA_VERSION
from edgedeploy.release.stage_ids import KINDS
from edgedeploy.release.stages import build


def run(recipe_path, *, gate: bool = False, only: str | None = None, overrides: tuple[str, ...] = (), run_dir=None, echo=print) -> dict:
    recipe = load(recipe_path, overrides)
    run_dir = Path(run_dir or recipe.spec.run_dir or Path("runs") / recipe.name).absolute()
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInput(f"--run-dir {run_dir}: is a file; a run directory holds the stages and the report")
    stages = build(recipe, run_dir)
    if only and not any(only in (str(s.id), s.kind) for s in stages):
        raise BadInput(f"--only {only}: no such stage; stages: {', '.join(str(s.id) for s in stages)} (or a kind: {', '.join(KINDS)})")
    run_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(run_dir):
        write_json_atomic(run_dir / "recipe.json", recipe.document())
        records = Runner(run_dir, tool_versions(), echo).execute(stages, only)
        report, paths = build_report(run_dir)
        failed = [r for r in records.values() if r.status == "failed"]
        summary = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "recipe": recipe.name,
            "recipe_file": str(recipe.path),
            "run_dir": str(run_dir),
            "finished": utc_now(),
            "exit_code": failed[0].exit_code if failed else (report["gate"]["exit_code"] if gate else 0),
            "stages": {str(sid): r.status for sid, r in records.items()},
            "failed_stages": {r.id: r.error for r in failed},
            "gate": report["gate"],
            "report": {k: str(v) for k, v in paths.items()},
        }
        write_json_atomic(run_dir / "summary.json", summary)
    return summary


@contextlib.contextmanager
def _exclusive(run_dir: Path):
    """One run per run directory at a time."""
    import fcntl

    lock = run_dir / ".lock"
    try:  # O_NOFOLLOW, no truncation: a planted link or file is never written through
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInput(f"{lock}: is a symbolic link; remove it (edgedeploy never writes through links)") from None
        raise
    with os.fdopen(fd, "r+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(f"{run_dir}: another 'edgedeploy run' is using this run directory; wait for it or pass --run-dir") from None
        yield


class StageFailed(EdgeDeployError):
    """A stage of the run failed (its exit code is the stage's)."""


def raise_for(summary: dict, gate: bool) -> None:
    if summary["failed_stages"]:
        sid, err = next(iter(summary["failed_stages"].items()))
        n = len(summary["failed_stages"])
        raise StageFailed(
            f"stage {sid} failed: {err}"
            + (f" (and {n - 1} more)" if n > 1 else "")
            + f"; finished stages are kept in {summary['run_dir']}, re-run to resume",
            exit_code=summary["exit_code"],
        )
    if gate and summary["gate"]["exit_code"]:
        g = summary["gate"]
        what = g["failed"] or g["untrusted"]
        raise EdgeDeployError(
            f"gate {'failed' if g['exit_code'] == 1 else 'could not trust a benchmark'}: {what[0]}"
            + (f" (+{len(what) - 1} more, see {summary['report']['report.md']})" if len(what) > 1 else ""),
            exit_code=g["exit_code"],
        )
