"""Quantization settings: flags override the profile's preset, which overrides defaults.
Every value records who chose it. Flag values are validated by ``QuantizeOptions``, profile
values by the profile schema."""

from __future__ import annotations

from edgedeploy.core.errors import BadInput

DEFAULTS = {
    "dynamic": {"weight_type": "int8", "per_channel": True, "reduce_range": False},
    "static": {
        "format": "QDQ",
        "activation_type": "uint8",
        "weight_type": "int8",
        "per_channel": True,
        "reduce_range": False,
        "symmetric_activations": False,
        "symmetric_weights": True,
        "calib_method": "minmax",
        "quantize_outputs": False,
    },
    "fp16": {"keep_io_types": True, "op_block_list": ()},
    "int4": {
        "block_size": 32,
        "symmetric": False,
        "accuracy_level": 4,
        "int4_embeddings": True,
        "embedding_block_size": 64,
        "int4_sensitive_8bit": 2,
        "embedding_bits": 4,
        "lm_head_bits": 4,
        "int4_algorithm": "rtn",
    },
}
# --int4-preset: between the profile and the flags (a flag still wins)
PRESETS = {
    "accuracy": {"block_size": 64, "symmetric": False, "int4_embeddings": True, "embedding_bits": 8, "lm_head_bits": 8, "int4_sensitive_8bit": 2},
    "compression": {
        "block_size": 128,
        "symmetric": True,
        "int4_embeddings": True,
        "embedding_bits": 4,
        "embedding_block_size": 128,
        "lm_head_bits": 4,
        "int4_sensitive_8bit": 0,
    },
}
FROM_PROFILE = {  # setting -> key in the profile's quantization section
    "weight_type": "weight_type",
    "per_channel": "per_channel",
    "reduce_range": "reduce_range",
    "format": "format",
    "activation_type": "activation_type",
    "symmetric_activations": "symmetric_activations",
    "symmetric_weights": "symmetric_weights",
    "block_size": "int4_block_size",
    "accuracy_level": "int4_accuracy_level",
}


def resolve(method: str, profile: dict | None, overrides: dict, preset: str | None = None) -> tuple[dict, dict]:
    settings, chosen_by = {}, {}
    pq = (profile or {}).get("quantization", {})
    if preset and method != "int4":
        raise BadInput(f"--int4-preset applies to --method int4, not {method}")
    for key, default in DEFAULTS[method].items():
        value, who = default, "default"
        if key in FROM_PROFILE and FROM_PROFILE[key] in pq:
            value, who = pq[FROM_PROFILE[key]], f"profile {profile['name']}"
        if preset and key in PRESETS[preset]:
            value, who = PRESETS[preset][key], f"preset {preset}"
        if overrides.get(key) is not None:
            value, who = overrides[key], "flag"
        settings[key], chosen_by[key] = value, who
    if method == "static" and settings["format"] == "QOperator" and settings["activation_type"] == "int8" and settings["weight_type"] == "uint8":
        raise BadInput("static QOperator with int8 activations and uint8 weights is not supported by ONNX Runtime")
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
