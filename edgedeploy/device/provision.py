"""Offline provisioning: the host downloads wheels for the target's platform and Python,
builds a wheel of the edgedeploy runtime, copies them over and installs them into a venv
on the target with ``pip --no-index``. The target never needs internet. Idempotent."""

from __future__ import annotations

import logging
import re
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


def platform_tags(arch: str) -> list[str]:
    return [f"manylinux_2_{v}_{arch}" for v in (28, 27, 17)] + [f"manylinux2014_{arch}", f"linux_{arch}"]


def download_wheels(dest: Path, arch: str, python: str, packages: list[str], extra_index_url: str | None = None) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        "--python-version",
        python,
        "--implementation",
        "cp",
    ]
    for tag in platform_tags(arch):
        cmd += ["--platform", tag]
    if extra_index_url:
        cmd += ["--extra-index-url", extra_index_url]
    proc = subprocess.run(cmd + packages, capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "pip download failed"
        raise EnvironmentFailure(f"could not download wheels for {arch} / Python {python} on this host: {last}")


def provision(
    target: ssh.Host,
    venv: str = ".edgedeploy/venv",
    python: str = "python3",
    packages: list[str] | None = None,
    ort_wheel: Path | None = None,
    extra_index_url: str | None = None,
) -> dict:
    """Install numpy, onnxruntime (or the ``ort_wheel`` build) and the runtime wheel into ``venv``."""
    import importlib.metadata as md

    info = remote.probe(target, python, venv)
    ort = "onnxruntime"
    if ort_wheel is not None:
        ort, ort_version = ort_wheel_info(ort_wheel, info["arch"])
        want = [f"numpy=={md.version('numpy')}", str(Path(ort_wheel).resolve())]
        wanted = {"numpy": md.version("numpy"), ort: ort_version}
    else:
        want = packages or [f"numpy=={md.version('numpy')}", f"onnxruntime=={md.version('onnxruntime')}"]
        wanted = {p.split("==")[0].lower(): (p.split("==")[1] if "==" in p else None) for p in want}
    wanted["edgedeploy-runtime"] = __version__
    have = info["installed"]
    missing = {k: v for k, v in wanted.items() if k not in have or (v and have[k] != v)}
    if not missing:
        log.info("%s: %s already has %s; nothing to install", target.label, venv, ", ".join(f"{k} {have[k]}" for k in wanted))
        return {"host": target.label, "venv": venv, "installed": [], "already": {k: have[k] for k in wanted}, "remote": info}
    with tempfile.TemporaryDirectory(prefix="edgedeploy-wheels-") as tmp:
        wh = Path(tmp) / "wheelhouse"
        wh.mkdir()
        log.info("downloading wheels for %s / Python %s on the host", info["arch"], info["python_tag"])
        download_wheels(wh, info["arch"], info["python_tag"], want, extra_index_url)
        runtime_wheel(wh)
        sums = {f.relative_to(wh).as_posix(): sha256_file(f) for f in wh.iterdir()}
        workdir = ssh.run(target, [python, "-c", remote.MKTEMP]).stdout.decode().strip()
        try:
            remote.upload(target, wh, workdir)
            remote.verify(target, python, f"{workdir}/.staging", sums)
            proc = ssh.run(
                target,
                ["sh", "-c", INSTALL, "sh", venv, f"{workdir}/.staging", python, f"edgedeploy-runtime=={__version__}", ort],
                check=False,
                timeout=900,
            )
            if proc.returncode != 0:
                raise EnvironmentFailure(f"{target.label}: offline install into {venv} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
        finally:
            ssh.run(target, ["rm", "-rf", "--", workdir], check=False)
    return {"host": target.label, "venv": venv, "installed": sorted(sums), "remote": info}
