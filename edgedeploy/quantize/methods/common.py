"""What the INT8 methods share: ONNX Runtime's type names and the settings both declare."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

IntType = Literal["int8", "uint8"]
QTYPES = {"int8": "QInt8", "uint8": "QUInt8"}


def qtype(name: str):
    from onnxruntime.quantization import QuantType

    return getattr(QuantType, QTYPES[name])


def weight_type_field():
    return Field("int8", description="INT8 weight type.", json_schema_extra={"profile": "weight_type"})


def per_channel_field():
    return Field(True, description="Per-channel weight scales.", json_schema_extra={"profile": "per_channel", "off_flag": "--per-tensor"})


def reduce_range_field():
    return Field(False, description="7-bit weights (for CPUs without VNNI).", json_schema_extra={"profile": "reduce_range"})


def int8_neighbours(settings: dict, rules: dict) -> list[dict]:
    """Per-channel, reduce_range and weight-type flips of an INT8 candidate, as the profile allows."""
    flips: list[dict] = []
    if not settings.get("smooth_quant"):  # smoothed weights need per-channel scales (per-tensor: mean cosine 0.88 on MiniLM)
        flips.append({"per_channel": not settings.get("per_channel", True)})
    if rules["reduce_range"]:
        flips.append({"reduce_range": not settings.get("reduce_range", False)})
    flips += [{"weight_type": w} for w in rules["weight_types"] if w != settings.get("weight_type", rules["profile_weight_type"])]
    if settings.get("smooth_quant"):
        flips.append({"smooth_quant": 0.5 if settings["smooth_quant"] == 0.7 else 0.7})
    return flips
