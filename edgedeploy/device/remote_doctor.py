"""``doctor --host``: the runtime zipapp is uploaded to a temporary folder on the device, its
``doctor`` command reads the device's facts there (``runtimes/facts.py``), and the host judges
them with the same ``diagnose`` as for itself. The device's JSON is read as untrusted."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from edgedeploy.core.artifact import sha256_file
from edgedeploy.core.errors import BadInput, EnvironmentFailure
from edgedeploy.device import remote, ssh
from edgedeploy.device.runtime_bundle import build_zipapp

MAX_FACTS_BYTES = 1 << 20


def device_facts(target: ssh.Host, python: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgedeploy-doctor-") as tmp:
        pyz = Path(tmp) / remote.PYZ
        build_zipapp(pyz)
        with remote.uploaded(target, python, Path(tmp), {remote.PYZ: sha256_file(pyz)}) as staging:
            proc = ssh.run(target, [python, f"{staging}/{remote.PYZ}", "doctor"], check=False, timeout=120)
    if proc.returncode != 0:
        raise EnvironmentFailure(f"{target.label}: the device's doctor failed: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    return parse(proc.stdout, target.label)


def parse(raw: bytes, where: str) -> dict:
    """The device's facts, with the fields ``diagnose`` reads checked for their types."""
    try:
        doc = json.loads(raw[:MAX_FACTS_BYTES].decode("utf-8").strip().splitlines()[-1])
    except (UnicodeDecodeError, json.JSONDecodeError, IndexError, RecursionError):
        raise BadInput(f"{where}: the device's doctor report is not JSON") from None
    ok = (
        isinstance(doc, dict)
        and isinstance(doc.get("host"), dict)
        and isinstance(doc.get("cpu_flags", []), list)
        and isinstance(doc.get("jetson"), (dict, type(None)))
        and isinstance(doc.get("variables", {}), dict)
        and isinstance(doc.get("device_state", {}), dict)
        and isinstance(doc["host"].get("cores", 1), int)
    )
    if not ok:
        raise BadInput(f"{where}: the device's doctor report does not have the expected fields")
    return doc
