"""The stage runner behind ``edgedeploy run``: stages in dependency order, each cached by the
content of its inputs (artifact hashes, data hashes, settings, tool versions).

A stage whose key matches its last successful record, and whose outputs are still intact,
is skipped and says so. A failed stage is recorded with its error; the stages that need it
are skipped; everything finished stays, so the next run resumes where this one stopped.
Records live in ``RUN_DIR/stages/<stage>.json`` and are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import EdgeDeployError, Interrupted

log = logging.getLogger("edgedeploy")


@dataclass
class Stage:
    id: str
    kind: str
    inputs: Callable[[dict], dict]  # results of finished stages -> the key material
    run: Callable[[dict], dict]  # results of finished stages -> this stage's result (JSON)
    deps: list[str] = field(default_factory=list)  # all must succeed
    soft_deps: list[str] = field(default_factory=list)  # used when they succeeded
    intact: Callable[[dict], bool] = lambda result: True  # are the outputs of a cached result still there?


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Runner:
    def __init__(self, run_dir: Path, versions: dict, echo: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.stage_dir = self.run_dir / "stages"
        self.versions = versions
        self.echo = echo

    def record_path(self, stage_id: str) -> Path:
        return self.stage_dir / f"{stage_id.replace(':', '__')}.json"

    def record(self, stage_id: str) -> dict | None:
        p = self.record_path(stage_id)
        try:
            return json.loads(p.read_text()) if p.is_file() else None
        except json.JSONDecodeError:
            return None  # a torn record cannot happen with atomic writes, but never trust one

    def _write(self, stage_id: str, rec: dict) -> None:
        write_json_atomic(self.record_path(stage_id), rec)

    def execute(self, stages: list[Stage], only: str | None = None) -> dict[str, dict]:
        """Run ``stages`` (already in dependency order). Returns {id: record}."""
        results: dict[str, dict] = {}
        records: dict[str, dict] = {}
        for st in stages:
            failed = [d for d in st.deps if records.get(d, {}).get("status") not in ("ok", "cached")]
            if only and not _matches(st, only):
                rec = self.record(st.id)
                if rec and rec.get("status") == "ok" and not failed and st.intact(rec["result"]):
                    results[st.id] = rec["result"]
                    records[st.id] = {**rec, "status": "cached"}
                else:
                    records[st.id] = {"id": st.id, "status": "not-run"}
                continue
            if failed:
                why = f"needs {', '.join(failed)}, which did not finish"
                self.echo(f"[skip]   {st.id}: {why}")
                records[st.id] = {"id": st.id, "status": "skipped", "reason": why}
                self._write(st.id, {**records[st.id], "at": _now()})
                continue
            avail = {d: results[d] for d in st.deps + st.soft_deps if d in results}
            try:
                key = stable_hash({"stage": st.id, "inputs": st.inputs(avail), "versions": self.versions})
            except EdgeDeployError as exc:
                records[st.id] = self._fail(st, None, exc, 0.0)
                continue
            rec = self.record(st.id)
            if rec and rec.get("status") == "ok" and rec.get("key") == key and st.intact(rec["result"]):
                self.echo(f"[cached] {st.id}: inputs unchanged since {rec['finished']}")
                results[st.id] = rec["result"]
                records[st.id] = {**rec, "status": "cached"}
                continue
            self.echo(f"[run]    {st.id}")
            t0 = time.perf_counter()
            try:
                result = st.run(avail)
            except Interrupted:
                raise  # Ctrl-C / SIGTERM stops the run; the stage's partial output was already removed
            except EdgeDeployError as exc:
                records[st.id] = self._fail(st, key, exc, time.perf_counter() - t0)
                continue
            rec = {"id": st.id, "kind": st.kind, "status": "ok", "key": key, "seconds": round(time.perf_counter() - t0, 2),
                   "finished": _now(), "result": result}
            self._write(st.id, rec)
            self.echo(f"[done]   {st.id} in {rec['seconds']:.1f} s")
            results[st.id] = result
            records[st.id] = rec
        return records

    def _fail(self, st: Stage, key, exc: EdgeDeployError, seconds: float) -> dict:
        rec = {"id": st.id, "kind": st.kind, "status": "failed", "key": key, "error": str(exc), "exit_code": exc.exit_code,
               "seconds": round(seconds, 2), "finished": _now()}
        self._write(st.id, rec)
        self.echo(f"[FAILED] {st.id}: {exc}")
        return rec


def _matches(st: Stage, only: str) -> bool:
    return only in (st.id, st.kind)


def _now() -> str:
    from edgedeploy.core.artifact import utc_now

    return utc_now()
