"""Package the device-side code (``edgedeploy.runtimes`` only) for a target that has nothing
but numpy and onnxruntime: a zipapp (``python edgedeploy-runtime.pyz ...``, what ``bench
--host`` uploads) and a wheel, ``edgedeploy-runtime``, with an ``edgedeploy-runtime`` console
script (what ``provision`` installs and ``make dist`` writes; it is for device images: it holds
``edgedeploy/__init__.py`` and would shadow a full edgedeploy install in the same env).

``python -m edgedeploy.device.runtime_bundle --wheel DIR`` writes the wheel into DIR."""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import zipfile
from pathlib import Path

from edgedeploy import __version__
from edgedeploy.core.atomic import write_bytes_atomic

MAIN = "from edgedeploy.runtimes.__main__ import main\nmain()\n"
RUNTIME_DIST = "edgedeploy_runtime"


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
    """A pure-Python wheel with edgedeploy/__init__.py and edgedeploy/runtimes only."""
    name = f"{RUNTIME_DIST}-{__version__}"
    files = dict(runtime_sources())
    files[f"{name}.dist-info/METADATA"] = (
        f"Metadata-Version: 2.1\nName: edgedeploy-runtime\nVersion: {__version__}\n"
        "Summary: edgedeploy device-side benchmark harness (numpy + onnxruntime only)\n"
        "License-Expression: Apache-2.0\nRequires-Python: >=3.9\nRequires-Dist: numpy\nRequires-Dist: onnxruntime\n"
    ).encode()
    files[f"{name}.dist-info/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: edgedeploy\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{name}.dist-info/entry_points.txt"] = b"[console_scripts]\nedgedeploy-runtime = edgedeploy.runtimes.__main__:main\n"
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}.dist-info/RECORD,,")
    files[f"{name}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    out = Path(dest) / f"{name}-py3-none-any.whl"
    write_bytes_atomic(out, buf.getvalue())
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--wheel":
        sys.exit("usage: python -m edgedeploy.device.runtime_bundle --wheel DIR")
    print(runtime_wheel(Path(sys.argv[2])))
