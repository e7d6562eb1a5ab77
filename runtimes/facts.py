"""What ``doctor`` needs to know about a machine, read on that machine: CPU, ISA flags, cores,
onnxruntime and its providers, governor, load, the variables that change baselines, a Jetson's
release and power modes, and the thermal and clock state. Device-side: standard library, and
numpy/onnxruntime when they are installed (their absence is itself a finding)."""

from __future__ import annotations

import os
import platform

from . import device_state, environment, jetson

VARIABLES = ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def collect() -> dict:
    try:
        host = environment.describe()
    except ImportError as exc:  # numpy or onnxruntime missing: still describe the machine
        host = {**environment.cpuinfo(), "arch": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
        host.update({"os": f"{platform.system()} {platform.release()}", "governor": environment.governor(), "missing": str(exc)})
        host.update({"onnxruntime": None, "providers_available": []})
    tegra = jetson.read_release()
    if tegra is not None:
        tegra.update(power_mode=jetson.power_mode(), power_modes=jetson.power_modes())
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    return {
        "host": host,
        "cpu_flags": sorted(environment.cpu_flags()),
        "jetson": tegra,
        "load_average_1m": load1,
        "variables": {v: os.environ[v] for v in VARIABLES if os.environ.get(v)},
        "device_state": device_state.read(),
    }
