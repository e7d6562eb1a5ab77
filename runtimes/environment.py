"""What a result was measured on: CPU, ISA flags, cores, OS, Python, onnxruntime."""

from __future__ import annotations

import os
import platform
import resource
import sys

INTERESTING_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "f16c",
    "asimd",
    "asimddp",
    "fphp",
    "asimdhp",
    "i8mm",
    "sve",
    "bf16",
    "hypervisor",
)


def _proc_cpuinfo() -> tuple[str, set[str]]:
    """(CPU model, every ISA flag) from /proc/cpuinfo: the one parser of it."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "features"):
                    flags.update(value.split())
    except OSError:
        pass
    return model, flags


def cpu_flags() -> set[str]:
    """Every ISA flag the kernel reports (x86 ``flags``, ARM ``Features``)."""
    return _proc_cpuinfo()[1]


def cpuinfo() -> dict:
    model, flags = _proc_cpuinfo()
    model = model or platform.processor() or ""
    if not model:
        try:
            with open("/proc/device-tree/model") as fh:
                model = fh.read().strip("\x00\n ")
        except OSError:
            model = platform.machine()
    return {"cpu_model": model, "isa_flags": sorted(f for f in flags if f in INTERESTING_FLAGS)}


def governor() -> str | None:
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as fh:
            return fh.read().strip()
    except OSError:
        return None


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 1e6


def describe(session_info: dict | None = None, profile: str | None = None) -> dict:
    import numpy
    import onnxruntime

    env = {
        **cpuinfo(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "providers_available": onnxruntime.get_available_providers(),
        "governor": governor(),
        "profile": profile,
        "hostname": platform.node(),
    }
    if session_info:
        env["providers_used"] = session_info.get("providers_used")
        env["threads"] = {"intra_op": session_info.get("intra_op_threads"), "inter_op": session_info.get("inter_op_threads")}
    return env
