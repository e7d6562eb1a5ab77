"""``doctor``: the closest device profile and what will make numbers unreliable, judged from a
machine's facts (``runtimes/facts.py``), read here or on a device over SSH (``--host``)."""

from __future__ import annotations

from edgedeploy.runtimes import device_state, facts, jetson


def closest_profile(arch: str, flags: set[str], jetson_board: bool) -> str:
    if arch in ("x86_64", "AMD64"):
        return "x86-64-avx512-vnni" if "avx512_vnni" in flags else "x86-64-avx2"
    if arch in ("aarch64", "arm64"):
        if jetson_board:
            return "jetson-orin-nano" if "asimddp" in flags else "jetson-nano"
        return "rpi5" if "asimddp" in flags else "rpi4"
    return "x86-64-avx2"


def diagnose(found: dict | None = None) -> dict:
    """The diagnosis of ``found`` (a machine's facts; default: this host's)."""
    found = found if found is not None else facts.collect()
    env, flags, tegra = found["host"], set(found.get("cpu_flags") or []), found.get("jetson")
    warnings = _jetson_warnings(env, tegra) if tegra is not None else []
    if env.get("missing"):
        warnings.append(f"{env['missing']}: install numpy and onnxruntime there (edgedeploy provision --host ...)")
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
    cores, load1 = env.get("cores") or 1, found.get("load_average_1m")
    if cores <= 2:
        warnings.append(f"only {cores} cores: background work competes directly with the timed threads")
    if load1 is not None and load1 > 0.5 * cores:
        warnings.append(f"load average {load1:.2f} on {cores} cores: other processes are busy")
    warnings += [f"{k}={v} is set and changes how PyTorch/numpy baselines run" for k, v in (found.get("variables") or {}).items()]
    state = found.get("device_state") or {}
    warnings += [f"the device is throttling now: {why}" for why in device_state.problems(state, state)]
    hot = device_state.hottest(state)
    if hot is not None and hot >= 75:
        warnings.append(f"hottest thermal zone at {hot:.0f} °C: a Pi throttles at 80-85 °C; cool it or bench with --cooldown-c")
    profile = closest_profile(env.get("arch") or "", flags, tegra is not None)
    return {"host": env, "closest_profile": profile, "is_jetson": tegra is not None, "jetson": tegra, "load_average_1m": load1, "warnings": warnings}


def _jetson_warnings(env: dict, tegra: dict) -> list[str]:
    out = []
    if not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(env.get("providers_available") or []):
        out.append(f"Jetson without a GPU build of onnxruntime: {tegra['ort_hint']}")
    power = jetson.power_mode_warning(tegra.get("power_mode"), tegra.get("power_modes") or {})
    return out + ([power] if power else [])


def resolve_profile(name: str | None) -> str | None:
    """A profile name as written in a flag or recipe: ``auto`` is the closest to this host."""
    return diagnose()["closest_profile"] if name == "auto" else name
