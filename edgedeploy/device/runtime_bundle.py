"""Package the device-side code (``edgedeploy.runtimes`` only) as a zipapp that runs with
``python edgedeploy-runtime.pyz ...`` on a target that has nothing but numpy and
onnxruntime."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

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
