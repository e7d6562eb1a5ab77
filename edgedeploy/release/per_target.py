"""Artifacts built for the device that measures them. A quantized variant with ``profile: auto``
takes its settings from the profile of each target it is measured on: one artifact per device
profile among its targets (``int8.rpi4``, ``int8.x86-64-avx2`` when there are two; just ``int8``
when there is one), each measured on the targets of that profile only. ``auto`` is the target's
own profile for a device target and this host's for a local one. A variant that names a profile
pins it: one artifact, measured everywhere (or on its ``targets``)."""

from __future__ import annotations

from edgedeploy.device.doctor import resolve_profile
from edgedeploy.release.spec import RecipeSpec, VariantSpec

AUTO = "auto"


def target_profiles(spec: RecipeSpec) -> dict[str, str]:
    """{target name: the profile it measures with} (``auto`` resolved to this host's for a local target)."""
    return {t.name: resolve_profile(t.profile) for t in spec.targets}


def per_target(spec: RecipeSpec) -> tuple[RecipeSpec, list[str]]:
    """``spec`` with each ``profile: auto`` variant split per device profile, and the problems
    (a split name that another variant already has)."""
    profiles = target_profiles(spec)
    out: dict[str, VariantSpec] = {}
    problems = []
    for name, v in spec.variants.items():
        if v.profile != AUTO or v.method in ("float", "tune"):
            out[name] = v
            continue
        mine = v.targets or list(profiles)
        kinds = sorted({profiles[t] for t in mine})
        for kind in kinds:
            split = name if len(kinds) == 1 else f"{name}.{kind}"
            if split != name and split in spec.variants:
                problems.append(f"variants.{name}: its artifact for profile {kind} would be named {split}, which is another variant; rename one")
            out[split] = v.model_copy(update={"profile": kind, "targets": [t for t in mine if profiles[t] == kind]})
    return spec.model_copy(update={"variants": out}), problems


def measured_on(v: VariantSpec, target: str) -> bool:
    return not v.targets or target in v.targets
