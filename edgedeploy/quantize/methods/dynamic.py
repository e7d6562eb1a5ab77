"""Dynamic INT8: weights quantized ahead of time, activations at run time (no calibration)."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.quantize.methods.common import IntType, int8_neighbours, per_channel_field, qtype, reduce_range_field, weight_type_field
from edgedeploy.quantize.methods.registry import ENCODER_DECODER, SINGLE, MethodConfig, QuantMethod, RunContext, register


class DynamicConfig(MethodConfig):
    weight_type: IntType = weight_type_field()
    per_channel: bool = per_channel_field()
    reduce_range: bool = reduce_range_field()


@register
class Dynamic(QuantMethod):
    name = "dynamic"
    summary = "INT8 weights, activations quantized at run time (no calibration)"
    Config = DynamicConfig
    smoothing = True
    graphs = frozenset({SINGLE, ENCODER_DECODER})

    def run(self, src: Path, dst: Path, settings: dict, ctx: RunContext) -> dict:
        from onnxruntime.quantization import quantize_dynamic

        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=qtype(settings["weight_type"]),
            per_channel=settings["per_channel"],
            reduce_range=settings["reduce_range"],
            nodes_to_exclude=ctx.excluded or None,
            nodes_to_quantize=ctx.only or None,
            extra_options={"MatMulConstBOnly": True},
        )
        return {k: settings[k] for k in DynamicConfig.model_fields}

    def tune_bases(self, rules: dict, have_calib: bool, have_fused: bool) -> tuple[list[dict], list[str]]:
        out = []
        for parent in ("plain", "fused") if have_fused else ("plain",):
            out.append((parent, {}))
            if have_calib:  # SmoothQuant needs activation ranges, and per-channel weights to absorb them
                out.append((parent, {"smooth_quant": 0.7, "per_channel": True}))
        return out, []

    def tune_neighbours(self, settings: dict, rules: dict) -> list[dict]:
        return int8_neighbours(settings, rules)
