"""Offline provisioning: the host downloads wheels for the target's platform and Python,
builds a wheel of the edgedeploy runtime, copies them over and installs them into a venv
on the target with ``pip --no-index``. The target never needs internet. Idempotent."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgedeploy import __version__
from edgedeploy.core.artifact import sha256_file
from edgedeploy.core.errors import BadInput, EnvironmentFailure
from edgedeploy.device import remote, ssh
from edgedeploy.device.runtime_bundle import runtime_wheel

log = logging.getLogger("edgedeploy")
# $1 venv, $2 wheelhouse, $3 python, $4 the runtime requirement, $5 the onnxruntime distribution
# (onnxruntime, or onnxruntime-gpu from --ort-wheel). The runtime goes in without its declared
# onnxruntime requirement, so a GPU build satisfies it.
INSTALL = (
    'set -e; v="$1"; d="$2"; test -x "$v/bin/python" || "$3" -m venv "$v"; '
    '"$v/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$d" numpy "$5"; '
    '"$v/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$d" --no-deps "$4"'
)
ORT_WHEEL = re.compile(r"(?P<dist>onnxruntime(?:[_-][a-z0-9]+)*)-(?P<version>[^-]+)-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl")


def ort_wheel_info(path: Path, arch: str) -> tuple[str, str]:
    """(distribution, version) of an onnxruntime wheel for a device of ``arch`` (e.g. NVIDIA's
    onnxruntime-gpu for JetPack); a file that is not one is bad input."""
    path = Path(path)
    m = ORT_WHEEL.fullmatch(path.name)
    if not path.is_file() or m is None:
        raise BadInput(f"--ort-wheel {path}: expected an onnxruntime wheel file (onnxruntime*-VERSION-PY-ABI-PLATFORM.whl)")
    if arch not in m.group("plat") and m.group("plat") != "any":
        raise BadInput(f"--ort-wheel {path.name}: built for {m.group('plat')}, but the device is {arch}")
    return m.group("dist").replace("_", "-").lower(), m.group("version")


def platform_tags(arch: str, glibc: str | None = None) -> list[str]:
    """The wheel platforms a device of ``arch`` with ``glibc`` (e.g. "2.31") runs: every
    manylinux_2_N from 2_17 up to its glibc (2_28 when it is unknown), newest first."""
    try:
        top = int(str(glibc).split(".")[1]) if glibc else 28
    except (IndexError, ValueError):
        top = 28
    return [f"manylinux_2_{v}_{arch}" for v in range(max(top, 17), 16, -1)] + [f"manylinux2014_{arch}", f"linux_{arch}"]


def _pip(args: list[str], device: dict, extra_index_url: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check", "--only-binary=:all:"]
    cmd += ["--python-version", device["python_tag"], "--implementation", "cp"]
    for tag in platform_tags(device["arch"], device.get("libc_version")):
        cmd += ["--platform", tag]
    return cmd + (["--extra-index-url", extra_index_url] if extra_index_url else [])


def resolve(device: dict, requirements: list[str], extra_index_url: str | None = None) -> dict[str, str]:
    """{distribution: version} of the newest wheels that fit the device's Python, architecture
    and glibc (``device``: the probe's python_tag, arch and libc_version), dependencies included:
    what pip on the device would pick, decided on this host."""
    with tempfile.TemporaryDirectory(prefix="edgedeploy-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = _pip(["install", "--dry-run", "--ignore-installed", "--target", str(Path(tmp) / "t"), "--report", str(report)], device, extra_index_url)
        proc = subprocess.run(cmd + requirements, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentFailure(f"no wheels of {' '.join(requirements)} for {_where(device)}: {_last_line(proc.stderr)}")
        install = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in install}


def download_wheels(dest: Path, device: dict, pins: list[str], extra_index_url: str | None = None) -> None:
    proc = subprocess.run(_pip(["download", "--no-deps", "--dest", str(dest)], device, extra_index_url) + pins, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentFailure(f"could not download wheels for {_where(device)} on this host: {_last_line(proc.stderr)}")


def _where(device: dict) -> str:
    return f"{device['arch']} / Python {device['python_tag']}" + (f" / glibc {device['libc_version']}" if device.get("libc_version") else "")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if not ln.startswith("WARNING:")]
    return lines[-1] if lines else "pip failed"


def provision(
    target: ssh.Host,
    venv: str = ".edgedeploy/venv",
    python: str = "python3",
    packages: list[str] | None = None,
    ort_wheel: Path | None = None,
    extra_index_url: str | None = None,
) -> dict:
    """Install numpy, onnxruntime (or the ``ort_wheel`` build) and the runtime wheel into ``venv``:
    the newest versions that fit the device's Python, architecture and glibc (not this host's)."""
    info = remote.probe(target, python, venv)
    if info.get("libc") not in ("glibc", None, ""):
        raise EnvironmentFailure(f"{target.label}: its C library is {info['libc']}; the numpy and onnxruntime wheels need glibc")
    ort, reqs = "onnxruntime", list(packages or ["numpy", "onnxruntime"])
    if ort_wheel is not None:
        ort, _ = ort_wheel_info(ort_wheel, info["arch"])
        reqs = [r for r in reqs if not r.lower().startswith("onnxruntime")] + [str(Path(ort_wheel).resolve())]
    log.info("resolving wheels for %s on the host", _where(info))
    wanted = resolve(info, reqs, extra_index_url)
    have = info["installed"]
    needed = {**wanted, "edgedeploy-runtime": __version__}
    if all(have.get(k) == v for k, v in needed.items()):
        log.info("%s: %s already has %s; nothing to install", target.label, venv, ", ".join(f"{k} {v}" for k, v in needed.items()))
        return {"host": target.label, "venv": venv, "installed": [], "already": needed, "resolved": wanted, "remote": info}
    with tempfile.TemporaryDirectory(prefix="edgedeploy-wheels-") as tmp:
        wh = Path(tmp) / "wheelhouse"
        wh.mkdir()
        pins = [f"{k}=={v}" for k, v in wanted.items() if k != ort or ort_wheel is None]
        download_wheels(wh, info, pins, extra_index_url)
        if ort_wheel is not None:
            shutil.copy2(ort_wheel, wh / Path(ort_wheel).name)
        runtime_wheel(wh)
        sums = {f.relative_to(wh).as_posix(): sha256_file(f) for f in wh.iterdir()}
        _install(target, python, venv, wh, sums, ort)
    return {"host": target.label, "venv": venv, "installed": sorted(sums), "resolved": wanted, "remote": info}


def _install(target: ssh.Host, python: str, venv: str, wh: Path, sums: dict, ort: str) -> None:
    """Upload the wheelhouse, check it there and install it offline into ``venv``."""
    with remote.uploaded(target, python, wh, sums) as staging:
        proc = ssh.run(
            target, ["sh", "-c", INSTALL, "sh", venv, staging, python, f"edgedeploy-runtime=={__version__}", ort], check=False, timeout=900
        )
    if proc.returncode != 0:
        raise EnvironmentFailure(f"{target.label}: offline install into {venv} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
