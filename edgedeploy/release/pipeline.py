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

from pydantic import ValidationError

from edgedeploy.core.artifact import utc_now
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput, EdgeDeployError, Interrupted
from edgedeploy.release.records import Result, StageRecord
from edgedeploy.release.stage_ids import StageId

log = logging.getLogger("edgedeploy")


@dataclass
class Stage:
    id: StageId
    inputs: Callable[[dict], dict]  # results of finished stages -> the key material
    run: Callable[[dict], Result]  # results of finished stages -> this stage's result
    deps: list[StageId] = field(default_factory=list)  # all must succeed
    soft_deps: list[StageId] = field(default_factory=list)  # used when they succeeded
    intact: Callable[[Result], bool] = lambda result: True  # are the outputs of a cached result still there?

    @property
    def kind(self) -> str:
        return self.id.kind


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Runner:
    def __init__(self, run_dir: Path, versions: dict, echo: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.stage_dir = self.run_dir / "stages"
        self.versions = versions
        self.echo = echo

    def record_path(self, sid: StageId) -> Path:
        return self.stage_dir / sid.record_name

    def record(self, sid: StageId) -> StageRecord | None:
        try:
            return read_record(self.record_path(sid))
        except BadInput:
            return None  # a torn record cannot happen with atomic writes, but never trust one: the stage re-runs

    def _write(self, rec: StageRecord) -> None:
        write_json_atomic(self.record_path(StageId.parse(rec.id)), rec.model_dump(mode="json", exclude_none=True))

    def _reuse(self, st: Stage, rec: StageRecord | None, key: str | None = None) -> Result | None:
        """The cached result of ``st`` when its record is ok (for ``key``, when given) and its outputs are intact."""
        if rec is None or rec.status != "ok" or (key is not None and rec.key != key):
            return None
        try:
            result = rec.typed()
        except ValidationError:
            return None  # a record this version cannot read is rebuilt, never trusted
        return result if result is not None and st.intact(result) else None

    def execute(self, stages: list[Stage], only: str | None = None) -> dict[StageId, StageRecord]:
        """Run ``stages`` (already in dependency order). Returns {id: record}."""
        results: dict[StageId, Result] = {}
        records: dict[StageId, StageRecord] = {}
        for st in stages:
            sid = str(st.id)
            failed = [str(d) for d in st.deps if d not in records or not records[d].done]
            if only and not _matches(st, only):
                rec = self.record(st.id)
                result = None if failed else self._reuse(st, rec)
                if result is not None:
                    results[st.id] = result
                    records[st.id] = rec.model_copy(update={"status": "cached"})
                else:
                    records[st.id] = StageRecord(id=sid, kind=st.kind, status="not-run")
                continue
            if failed:
                why = f"needs {', '.join(failed)}, which did not finish"
                self.echo(f"[skip]   {sid}: {why}")
                records[st.id] = StageRecord(id=sid, kind=st.kind, status="skipped", reason=why, at=_now())
                self._write(records[st.id])
                continue
            avail = {d: results[d] for d in st.deps + st.soft_deps if d in results}
            try:
                key = stable_hash({"stage": sid, "inputs": st.inputs(avail), "versions": self.versions})
            except EdgeDeployError as exc:
                records[st.id] = self._fail(st, None, exc, 0.0)
                continue
            rec = self.record(st.id)
            cached = self._reuse(st, rec, key)
            if cached is not None:
                self.echo(f"[cached] {sid}: inputs unchanged since {rec.finished}")
                results[st.id] = cached
                records[st.id] = rec.model_copy(update={"status": "cached"})
                continue
            self.echo(f"[run]    {sid}")
            t0 = time.perf_counter()
            try:
                result = st.run(avail)
            except Interrupted:
                raise  # Ctrl-C / SIGTERM stops the run; the stage's partial output was already removed
            except EdgeDeployError as exc:
                records[st.id] = self._fail(st, key, exc, time.perf_counter() - t0)
                continue
            rec = StageRecord(
                id=sid, kind=st.kind, status="ok", key=key, seconds=round(time.perf_counter() - t0, 2), finished=_now(), result=result.document()
            )
            self._write(rec)
            self.echo(f"[done]   {sid} in {rec.seconds:.1f} s")
            results[st.id] = result
            records[st.id] = rec
        return records

    def _fail(self, st: Stage, key, exc: EdgeDeployError, seconds: float) -> StageRecord:
        rec = StageRecord(
            id=str(st.id), kind=st.kind, status="failed", key=key, error=str(exc), exit_code=exc.exit_code, seconds=round(seconds, 2), finished=_now()
        )
        self._write(rec)
        self.echo(f"[FAILED] {st.id}: {exc}")
        return rec


def read_record(path: Path) -> StageRecord | None:
    """A stage record, or None when there is none; a torn or foreign record is a bad-input error naming the file."""
    if not path.is_file():
        return None
    try:
        return StageRecord.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BadInput(f"{path}: not a readable stage record ({exc.errors()[0]['msg']}); delete it to re-run that stage") from None


def _matches(st: Stage, only: str) -> bool:
    return only in (str(st.id), st.kind)


def _now() -> str:
    return utc_now()
