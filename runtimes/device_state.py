"""The device's thermal and clock state, read before and after each measured model, and the
verdict on it: a timing taken while the device throttled or ran under-clocked is THROTTLED, and
never passes a budget. Device-side: standard library only.

Read: every thermal zone (``/sys/class/thermal/thermal_zone*/temp``, millidegrees), each CPU's
current/min/max and hardware-max frequency (``cpufreq``), a Raspberry Pi's throttle flags
(``vcgencmd get_throttled``) and a Jetson's power mode (``nvpmodel -q``) where those tools are
on the PATH. ``EDGEDEPLOY_SYSFS_ROOT`` points the reads at another root (a fake ``/sys``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT_ENV = "EDGEDEPLOY_SYSFS_ROOT"
MAX_ENTRIES = 256  # zones or CPUs read; a forged sysfs cannot make the probe long
COOLDOWN_LIMIT_S = 600.0
# vcgencmd get_throttled: bits 0-3 hold now, bits 16-19 have happened since boot
PI_NOW = {0x1: "under-voltage", 0x2: "ARM frequency capped", 0x4: "throttled", 0x8: "soft temperature limit"}


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(64).decode("ascii", "replace").strip()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _tool(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout[:4096].decode("ascii", "replace") if out.returncode == 0 else None


def _throttled() -> int | None:
    out = _tool(["vcgencmd", "get_throttled"])
    if not out or "=" not in out:
        return None
    try:
        return int(out.split("=", 1)[1].strip(), 16)
    except ValueError:
        return None


def _power_mode() -> str | None:
    out = _tool(["nvpmodel", "-q"])
    for line in (out or "").splitlines():
        if "Power Mode" in line and ":" in line:
            return line.split(":", 1)[1].strip()[:64]
    return None


def read() -> dict:
    """The state now: temperatures (degrees C by zone), CPU clocks (kHz), throttle flags, power mode."""
    root = Path(os.environ.get(ROOT_ENV) or "/")
    temps = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*"))[:MAX_ENTRIES]:
        milli = _int(zone / "temp")
        if milli is not None:
            temps[f"{zone.name}:{_read(zone / 'type') or '?'}"] = milli / 1000.0
    clocks = {}
    for cpu in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*"))[:MAX_ENTRIES]:
        f = cpu / "cpufreq"
        names = (("cur", "scaling_cur_freq"), ("min", "scaling_min_freq"), ("max", "scaling_max_freq"), ("hw_max", "cpuinfo_max_freq"))
        entry = {k: _int(f / name) for k, name in names}
        if any(v is not None for v in entry.values()):
            clocks[cpu.name] = entry
    return {"temperature_c": temps, "cpufreq_khz": clocks, "throttled": _throttled(), "power_mode": _power_mode(), "at": time.time()}


def problems(before: dict, after: dict) -> list[str]:
    """Why a timing between ``before`` and ``after`` cannot be vouched for (empty when it can)."""
    out = []
    for name, state in (("before", before), ("after", after)):
        flags = state.get("throttled")
        if flags:
            now = [why for bit, why in PI_NOW.items() if flags & bit]
            if now:
                out.append(f"{', '.join(now)} {name} (vcgencmd get_throttled={flags:#x})")
    b, a = before.get("throttled") or 0, after.get("throttled") or 0
    if (a & ~b) & 0xF0000:
        out.append(f"throttling happened during the run (get_throttled {b:#x} -> {a:#x})")
    for cpu, clock in sorted(after.get("cpufreq_khz", {}).items()):
        if clock.get("max") and clock.get("hw_max") and clock["max"] < clock["hw_max"]:
            out.append(f"{cpu} capped at {clock['max'] / 1000:.0f} MHz of {clock['hw_max'] / 1000:.0f} MHz")
            break
    return out


def hottest(state: dict) -> float | None:
    temps = state.get("temperature_c") or {}
    return max(temps.values()) if temps else None


def cool_down(limit_c: float, poll_s: float = 1.0, max_wait_s: float = COOLDOWN_LIMIT_S) -> dict:
    """Wait until the hottest thermal zone is at or below ``limit_c`` (at most ``max_wait_s``)."""
    t0 = time.monotonic()
    temp = hottest(read())
    while temp is not None and temp > limit_c and time.monotonic() - t0 < max_wait_s:
        time.sleep(poll_s)
        temp = hottest(read())
    return {"limit_c": limit_c, "waited_s": round(time.monotonic() - t0, 1), "temperature_c": temp, "reached": temp is None or temp <= limit_c}
