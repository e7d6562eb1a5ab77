"""What a Jetson runs: the L4T release from /etc/nv_tegra_release, the JetPack line it belongs
to, the power mode from ``nvpmodel -q``, and which onnxruntime-gpu build it needs (PyPI has
none for Jetsons; NVIDIA publishes them per JetPack)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

RELEASE = Path("/etc/nv_tegra_release")
# L4T major release -> (JetPack line, the device Python its onnxruntime-gpu wheels are built for)
JETPACK = {32: ("JetPack 4.x", "3.6"), 34: ("JetPack 5.0 developer preview", "3.8"), 35: ("JetPack 5.x", "3.8"), 36: ("JetPack 6.x", "3.10")}


def read_release(path: Path = RELEASE) -> dict | None:
    """{"l4t": "35.4.1", "jetpack": ..., "python": ..., "ort_hint": ...} or None when this is no Jetson."""
    try:
        text = Path(path).read_text(errors="replace")[:4096]
    except OSError:
        return None
    m = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return {"l4t": None, "jetpack": None, "python": None, "ort_hint": f"{path} is not in the expected '# R35 (release), REVISION: 4.1' form"}
    major = int(m.group(1))
    l4t = f"{major}.{m.group(2)}"
    jetpack, python = JETPACK.get(major, (None, None))
    hint = (
        f"install NVIDIA's onnxruntime-gpu wheel built for {jetpack} (L4T R{l4t}, Python {python}) from the Jetson Zoo or the "
        f"jetson-ai-lab pip index, then: edgedeploy provision --host THIS-DEVICE --ort-wheel onnxruntime_gpu-...-linux_aarch64.whl"
        if jetpack
        else f"L4T R{l4t} is newer than this edgedeploy knows; use the onnxruntime-gpu wheel NVIDIA publishes for its JetPack"
    )
    return {"l4t": l4t, "jetpack": jetpack, "python": python, "ort_hint": hint}


def power_mode() -> str | None:
    """The nvpmodel power mode (e.g. 'MAXN'), when nvpmodel is there."""
    exe = shutil.which("nvpmodel")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"NV Power Mode:\s*(\S+)", out)
    return m.group(1) if m else None
