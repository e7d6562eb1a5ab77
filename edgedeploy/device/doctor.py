"""Host detection: closest device profile and what will make numbers unreliable."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from edgedeploy.device import jetson as jetson_info
from edgedeploy.runtimes import environment


def closest_profile(arch: str, flags: set[str], jetson: bool) -> str:
    if arch in ("x86_64", "AMD64"):
        return "x86-64-avx512-vnni" if "avx512_vnni" in flags else "x86-64-avx2"
    if arch in ("aarch64", "arm64"):
        if jetson:
            return "jetson-orin-nano" if "asimddp" in flags else "jetson-nano"
        return "rpi5" if "asimddp" in flags else "rpi4"
    return "x86-64-avx2"


def diagnose(release: Path = jetson_info.RELEASE) -> dict:
    env = environment.describe()
    flags = environment.cpu_flags()
    tegra = jetson_info.read_release(release)
    jetson = tegra is not None
    profile = closest_profile(platform.machine(), flags, jetson)
    warnings = []
    if jetson:
        tegra["power_mode"] = jetson_info.power_mode()
        gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(env.get("providers_available") or [])
        if not gpu:
            warnings.append(f"Jetson without a GPU build of onnxruntime: {tegra['ort_hint']}")
        if tegra["power_mode"] not in (None, "MAXN"):
            warnings.append(f"nvpmodel power mode is {tegra['power_mode']}, not MAXN: clocks are capped (sudo nvpmodel -m 0; sudo jetson_clocks)")
    gov = env.get("governor")
    if gov is None:
        warnings.append(
            "CPU frequency governor not readable (VM or container): clocks may scale or be shared; compare variants interleaved and trust ratios over absolute times"
        )
    elif gov != "performance":
        warnings.append(
            f"CPU governor is {gov!r}, not 'performance': latency will vary with frequency scaling (set it with cpupower frequency-set -g performance)"
        )
    if "hypervisor" in flags:
        warnings.append("running under a hypervisor: vCPUs may be shared with other tenants (noisy neighbours)")
    cores = os.cpu_count() or 1
    if cores <= 2:
        warnings.append(f"only {cores} cores: background work competes directly with the timed threads")
    try:
        load1 = os.getloadavg()[0]
        if load1 > 0.5 * cores:
            warnings.append(f"load average {load1:.2f} on {cores} cores: other processes are busy")
    except OSError:
        load1 = None
    for var in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            warnings.append(f"{var}={os.environ[var]} is set and changes how PyTorch/numpy baselines run")
    return {"host": env, "closest_profile": profile, "is_jetson": jetson, "jetson": tegra, "load_average_1m": load1, "warnings": warnings}


def resolve_profile(name: str | None) -> str | None:
    """A profile name as written in a flag or recipe: ``auto`` is the closest to this host."""
    return diagnose()["closest_profile"] if name == "auto" else name
