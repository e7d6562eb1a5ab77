"""Many devices at once: bounded concurrency, one failure never stops the others."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import BadInput, EdgeDeployError

log = logging.getLogger("edgedeploy")


def read_inventory(path: Path) -> list[dict]:
    """YAML: ``hosts: [{host: pi@10.0.0.5, profile: rpi4, remote_venv: .edgedeploy/venv}, ...]``
    (or a plain list of such entries / host strings)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: not a readable YAML inventory ({exc})") from None
    entries = doc.get("hosts") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"{path}: expected a list under 'hosts:'")
    out = []
    for i, e in enumerate(entries):
        e = {"host": e} if isinstance(e, str) else e
        if not isinstance(e, dict) or "host" not in e:
            raise BadInput(f"{path}: entry {i} has no 'host'")
        out.append(e)
    return out


def run_all(entries: list[dict], fn, parallel: int = 4) -> dict[str, dict]:
    """``fn(entry) -> doc``; returns {host: {"ok": doc} | {"error": message, "exit_code": n}}."""
    results: dict[str, dict] = {}

    def one(entry):
        try:
            return entry["host"], {"ok": fn(entry)}
        except EdgeDeployError as exc:
            log.warning("%s: %s", entry["host"], exc)
            return entry["host"], {"error": str(exc), "exit_code": exc.exit_code}

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for host, res in pool.map(one, entries):
            results[host] = res
    return results
