"""The search's state on disk, ``OUT.tune-state/``: every built candidate (an artifact under
``candidates/<id>``) and every measurement round, in ``state.json`` written atomically after
each step, so Ctrl-C or a lost device loses at most the step in progress and ``--resume``
continues from there."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput

STATE_SCHEMA = 1
# settings that change what is built or measured: a resumed search must use the same ones
PINNED = ("methods", "calib_data", "eval_data", "text_column", "label_column", "eval_samples", "calib_samples", "shape", "profile", "host")


CANDIDATE_ID = re.compile(r"^[0-9a-f]{12}$")
STATUSES = ("built", "failed", "skipped")
NUMBERS = ("mean_cosine", "worst_cosine", "size_bytes", "build_s", "accuracy", "accuracy_drop")


def _malformed(doc: dict) -> str | None:
    """What is wrong with a state file read back from disk (it names directories and feeds the
    winner's choice, so nothing in it is taken on trust), or None."""
    cands, order, rounds = doc["candidates"], doc.get("order"), doc.get("rounds")
    if not isinstance(order, list) or not isinstance(rounds, dict):
        return "its order or rounds are not a list and a mapping"
    for cid, rec in cands.items():
        if not (isinstance(cid, str) and CANDIDATE_ID.match(cid)) or not isinstance(rec, dict) or rec.get("id") != cid:
            return f"candidate {str(cid)[:40]!r} is not a candidate id this search makes"
        if rec.get("status") not in STATUSES:
            return f"candidate {cid}: unknown status {str(rec.get('status'))[:20]!r}"
        for k in NUMBERS:
            v = rec.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v):
                return f"candidate {cid}: {k} is not a number"
        if rec["status"] == "built" and any(not isinstance(rec.get(k), (int, float)) for k in ("mean_cosine", "worst_cosine", "size_bytes")):
            return f"candidate {cid}: built without its fidelity and size"
    if any(i not in cands for i in order):
        return "its order names a candidate it does not hold"
    return None


def state_dir(out: Path) -> Path:
    return out.with_name(out.name + ".tune-state")


class State:
    def __init__(self, root: Path, doc: dict):
        self.root, self.doc = root, doc

    @classmethod
    def open(cls, out: Path, parent_digest: str, pinned: dict, resume: bool, force: bool) -> State:
        root = state_dir(out)
        path = root / "state.json"
        if root.exists() and not resume:
            if not force:
                raise BadInput(f"{root}: an earlier search left its state here; continue it with --resume, or start over with --force")
            shutil.rmtree(root)
        if resume and path.is_file():
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise BadInput(f"{path}: unreadable search state ({exc}); start over with --force") from None
            if not isinstance(doc, dict) or doc.get("schema") != STATE_SCHEMA or not isinstance(doc.get("candidates"), dict):
                raise BadInput(f"{path}: not a search state of this edgedeploy version; start over with --force")
            problem = _malformed(doc)
            if problem:
                raise BadInput(f"{path}: {problem}; start over with --force")
            if doc.get("parent") != parent_digest:
                raise BadInput(f"{path}: that search tuned another parent ({str(doc.get('parent'))[:12]}); start over with --force")
            changed = [k for k in PINNED if doc.get("pinned", {}).get(k) != pinned.get(k)]
            if changed:
                raise BadInput(f"--resume: {', '.join(changed)} differ from the interrupted search; use the same settings, or --force to start over")
            return cls(root, doc)
        if resume:
            raise BadInput(f"--resume: no interrupted search at {root}")
        root.mkdir(parents=True)
        doc = {"schema": STATE_SCHEMA, "parent": parent_digest, "pinned": pinned, "candidates": {}, "rounds": {}, "order": []}
        st = cls(root, doc)
        st.save()
        return st

    def save(self) -> None:
        write_json_atomic(self.root / "state.json", self.doc)

    def candidate_dir(self, cid: str) -> Path:
        return self.root / "candidates" / cid

    def record(self, cand: dict, **fields) -> dict:
        rec = self.doc["candidates"].setdefault(cand["id"], {k: cand[k] for k in ("id", "label", "method", "parent", "settings")})
        rec.update(fields)
        if cand["id"] not in self.doc["order"]:
            self.doc["order"].append(cand["id"])
        self.save()
        return rec

    def get(self, cid: str) -> dict | None:
        return self.doc["candidates"].get(cid)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
