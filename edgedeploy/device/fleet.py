"""Many devices at once: bounded concurrency, one failure never stops the others."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgedeploy.core.errors import BadInput, EdgeDeployError
from edgedeploy.core.options import describe_error
from edgedeploy.core.yaml_io import read_yaml
from edgedeploy.device import ansible
from edgedeploy.device.options import RemoteOptions
from edgedeploy.device.ssh import Host

log = logging.getLogger("edgedeploy")


MAX_INVENTORY_BYTES = 1 << 20


class DevicesOptions(RemoteOptions):
    """Which devices a command acts on (``edgedeploy cleanup``, ``doctor``) and how to reach them."""

    host: list[str] = Field(default_factory=list, description="user@host[:port] or a ~/.ssh/config Host. Repeatable.")
    hosts: Path | None = Field(None, description="Inventory of devices: an Ansible inventory (INI or YAML) or edgedeploy's YAML list.")
    limit_hosts: str | None = Field(None, min_length=1, description="With --hosts: only these hosts or groups.")
    parallel: int = Field(4, ge=1, description="Devices at once.")


class InventoryEntry(BaseModel):
    """One device of a ``--hosts`` inventory."""

    model_config = ConfigDict(extra="forbid", strict=True)
    host: str = Field(min_length=1, description="user@host[:port] or a Host from the ssh config.")
    profile: str | None = None
    remote_venv: str | None = None
    remote_python: str | None = None


def read_inventory(path: Path, limit: str | None = None) -> list[dict]:
    """An Ansible inventory (INI or YAML, see ``device/ansible.py``) or edgedeploy's own YAML:
    ``hosts: [{host: pi@10.0.0.5, profile: rpi4, remote_venv: .edgedeploy/venv}, ...]`` (or a
    plain list of such entries / host strings). Every problem is a ``BadInput`` naming the file
    and the line."""
    found = ansible.read(path, limit)
    if found is not None:
        for e in found:
            Host.parse(e["host"], where=f"{path}: host {e['name']}")
        return found
    if limit:
        raise BadInput(f"--limit-hosts {limit!r}: applies to Ansible inventories; {path} is edgedeploy's own host list")
    doc, node = read_yaml(path, "inventory", MAX_INVENTORY_BYTES)
    entries, nodes = doc, node
    if isinstance(doc, dict):
        entries = doc.get("hosts")
        nodes = next((v for k, v in node.value if k.value == "hosts"), None)
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"{path}: expected a list of devices under 'hosts:'")
    out = []
    for i, e in enumerate(entries):
        line = nodes.value[i].start_mark.line + 1
        e = {"host": e} if isinstance(e, str) else e
        if not isinstance(e, dict):
            raise BadInput(f"{path}:{line}: hosts[{i}]: expected a host string or a mapping with 'host', got {type(e).__name__}")
        try:
            entry = InventoryEntry.model_validate(e)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(map(str, err["loc"])) or "entry"
            raise BadInput(f"{path}:{line}: hosts[{i}].{key}: {describe_error(err)}") from None
        Host.parse(entry.host, where=f"{path}:{line}: hosts[{i}]")
        out.append(entry.model_dump(exclude_none=True))
    return out


def entries(hosts, inventory: Path | None, limit: str | None = None) -> list[dict]:
    """The devices of ``--host`` flags and a ``--hosts`` inventory; the same device twice is refused
    (its second result would replace the first)."""
    if limit and not inventory:
        raise BadInput("--limit-hosts selects hosts of a --hosts inventory; give one")
    out = [{"host": h} for h in hosts] + (read_inventory(inventory, limit) if inventory else [])
    seen: dict[str, str] = {}
    for e in out:
        label = Host.parse(e["host"]).label
        if label in seen:
            raise BadInput(f"device {label!r} is listed twice ({seen[label]} and {e['host']!r}); list each device once")
        seen[label] = repr(e["host"])
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
