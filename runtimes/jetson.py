"""What a Jetson runs: the L4T release from /etc/nv_tegra_release, the JetPack line it belongs
to, the power mode from ``nvpmodel -q`` and the modes the board has (/etc/nvpmodel.conf), and
which onnxruntime-gpu build it needs (PyPI has none for Jetsons; NVIDIA publishes them per
JetPack). Device-side: standard library only (``doctor --host`` runs it there)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

RELEASE = Path("/etc/nv_tegra_release")
NVPMODEL_CONF = Path("/etc/nvpmodel.conf")
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


def power_modes(path: Path = NVPMODEL_CONF) -> dict[str, int]:
    """{mode name: nvpmodel id} from the board's nvpmodel.conf (``< POWER_MODEL ID=2 NAME=MAXN_SUPER >``)."""
    try:
        text = Path(path).read_text(errors="replace")[: 1 << 20]
    except OSError:
        return {}
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([\w.-]+)", text)}


def watts(mode: str) -> float | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)W", mode or "")
    return float(m.group(1)) if m else None


def power_mode_warning(mode: str | None, modes: dict[str, int]) -> str | None:
    """Why ``mode`` caps the clocks, naming the board's fastest mode (None when it is that one).
    MAXN and MAXN_SUPER are the fastest; otherwise the highest wattage (an Orin Nano on JetPack 5
    tops out at 15W; on JetPack 6.2 it has 25W and MAXN_SUPER)."""
    if mode is None or mode.startswith("MAXN"):
        return None
    best = next((m for m in sorted(modes) if m.startswith("MAXN")), None)
    if best is None:
        rated = {m: watts(m) for m in modes if watts(m) is not None}
        best = max(rated, key=rated.get) if rated else None
    if best is None:
        return f"nvpmodel power mode is {mode}; if the board has a faster mode (MAXN, MAXN_SUPER), clocks are capped: sudo nvpmodel -q --verbose lists them"
    if best == mode:
        return None
    return f"nvpmodel power mode is {mode}, not {best}: clocks are capped (sudo nvpmodel -m {modes[best]}; sudo jetson_clocks)"
