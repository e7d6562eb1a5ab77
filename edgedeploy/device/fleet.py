"""Many devices at once: bounded concurrency, one failure never stops the others."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgedeploy.core.errors import BadInput, EdgeDeployError
from edgedeploy.device.ssh import Host

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


def remote_options(entry: dict, opts) -> dict:
    """How to reach one device: an inventory entry's own settings over ``opts`` (``RemoteOptions``)."""
    target = Host.parse(
        entry["host"],
        config=str(opts.ssh_config) if opts.ssh_config else None,
        accept_new_host_key=opts.accept_new_host_key,
        connect_timeout=opts.connect_timeout,
    )
    venv = entry.get("remote_venv") or opts.remote_venv
    python = f"{venv.rstrip('/')}/bin/python" if venv else entry.get("remote_python") or opts.remote_python
    return {"target": target, "python": python, "timeout_s": opts.timeout, "keep_remote": opts.keep_remote, "bwlimit_kbps": opts.bwlimit}


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
