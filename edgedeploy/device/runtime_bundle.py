"""Package the device-side code (``edgedeploy.runtimes`` only) for a target that has nothing
but numpy and onnxruntime: a zipapp (``python edgedeploy-runtime.pyz ...``, what ``bench
--host`` uploads) and a wheel, ``edgedeploy-runtime``, with an ``edgedeploy-runtime`` console
script (what ``provision`` installs and ``make dist`` writes), built by setuptools from
``runtimes/pyproject.toml``.

``python -m edgedeploy.device.runtime_bundle --wheel DIR`` writes the wheel into DIR."""

from __future__ import annotations

import contextlib
import io
import sys
import zipfile
from pathlib import Path

from edgedeploy import __version__
from edgedeploy.core.atomic import write_bytes_atomic

MAIN = "from edgedeploy.runtimes.__main__ import main\nmain()\n"


def runtime_sources() -> dict[str, bytes]:
    import edgedeploy
    import edgedeploy.runtimes as rt

    files = {"edgedeploy/__init__.py": Path(edgedeploy.__file__).read_bytes()}
    for f in sorted(Path(rt.__file__).parent.glob("*.py")):
        files[f"edgedeploy/runtimes/{f.name}"] = f.read_bytes()
    return files


def build_zipapp(dest: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in runtime_sources().items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible bytes
            zf.writestr(info, data)
        zf.writestr(zipfile.ZipInfo("__main__.py", date_time=(2020, 1, 1, 0, 0, 0)), MAIN)
    write_bytes_atomic(Path(dest), b"#!/usr/bin/env python3\n" + buf.getvalue())
    Path(dest).chmod(0o755)
    return Path(dest)


def runtime_wheel(dest: Path) -> Path:
    """The ``edgedeploy-runtime`` wheel, built by setuptools' PEP 517 backend from the runtime's own
    project metadata (``runtimes/pyproject.toml``) over a staged copy of ``runtimes/*.py``."""
    import os
    import shutil
    import tempfile

    import edgedeploy.runtimes as rt

    src = Path(rt.__file__).parent
    with tempfile.TemporaryDirectory(prefix="edgedeploy-runtime-build-") as tmp:
        project = Path(tmp) / "project"
        pkg = project / "edgedeploy" / "runtimes"
        pkg.mkdir(parents=True)
        for f in sorted(src.glob("*.py")):
            shutil.copyfile(f, pkg / f.name)
        meta = (src / "pyproject.toml").read_text()
        if f'version = "{__version__}"' not in meta:
            raise RuntimeError(f"{src / 'pyproject.toml'}: its version is not edgedeploy's {__version__}; change both together")
        (project / "pyproject.toml").write_text(meta)
        out = Path(tmp) / "dist"
        out.mkdir()
        previous = os.getcwd()
        os.chdir(project)  # the PEP 517 hooks run in the project directory
        try:
            from setuptools import build_meta

            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                name = build_meta.build_wheel(str(out))
        finally:
            os.chdir(previous)
        target = Path(dest) / name
        write_bytes_atomic(target, (out / name).read_bytes())
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--wheel":
        sys.exit("usage: python -m edgedeploy.device.runtime_bundle --wheel DIR")
    print(runtime_wheel(Path(sys.argv[2])))
