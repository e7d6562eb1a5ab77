"""Quantization settings: flags override a preset, which overrides the profile, which overrides
the method's defaults. Every value records who chose it. Flag values are validated by the
method's ``Config``, profile values by the profile schema."""

from __future__ import annotations

from edgedeploy.quantize import methods


def resolve(method: str, profile: dict | None, overrides: dict) -> tuple[dict, dict]:
    """(settings, who chose each): the method's defaults, then the profile's quantization section
    (the keys a setting's declaration names), then a preset the method has, then the flags."""
    m = methods.get(method)
    settings, chosen_by = {}, {}
    pq = (profile or {}).get("quantization", {})
    preset = overrides.get(m.preset_setting) if m.preset_setting else None
    for key, field in m.Config.model_fields.items():
        if key == m.preset_setting:
            continue
        value, who = field.get_default(call_default_factory=True), "default"
        profile_key = (field.json_schema_extra or {}).get("profile") if isinstance(field.json_schema_extra, dict) else None
        if profile_key in pq:
            value, who = pq[profile_key], f"profile {profile['name']}"
        if preset and key in m.presets[preset]:
            value, who = m.presets[preset][key], f"preset {preset}"
        if overrides.get(key) is not None:
            value, who = overrides[key], "flag"
        settings[key], chosen_by[key] = value, who
    m.check(settings)
    return settings, chosen_by


def predictions(method: str, profile: dict | None, has_conv: bool) -> list[str]:
    """What the profile says about speed before we spend time quantizing."""
    notes = []
    if profile is None:
        if method == "fp16":
            notes.append("FP16 is meant for GPU/Jetson targets; on most CPUs it runs slower than float32 (no fp16 arithmetic): use it for size only")
        return notes
    pq = profile["quantization"]
    if method in ("dynamic", "static") and not pq["int8_faster"]:
        notes.append(f"profile {profile['name']} predicts INT8 will not be faster than float on this target: {pq['notes']}")
    if method == "dynamic" and has_conv:
        notes.append(
            "dynamic quantization of a CNN quantizes activations at run time per Conv; it is usually slower than float on CPUs: prefer --method static"
        )
    if method == "fp16" and profile["peaks"]["compute_unit"] == "cpu" and not pq["fp16"]:
        notes.append(
            f"FP16 is meant for GPU/Jetson profiles; on {profile['name']} it runs slower than float32 (no fp16 arithmetic): use it for size only"
        )
    if method == "int4":
        notes.append(
            "INT4 weight-only pays off where weights dominate: memory-bound decoding and small-RAM devices; at batch 1 x 128 tokens on a CPU MatMulNBits can be slower than float"
        )
    return notes
