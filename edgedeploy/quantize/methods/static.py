"""Static INT8: activation ranges calibrated on data ahead of time (QDQ or QOperator graphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgedeploy.core.errors import BadInput
from edgedeploy.quantize.methods.common import IntType, int8_neighbours, per_channel_field, qtype, reduce_range_field, weight_type_field
from edgedeploy.quantize.methods.registry import MethodConfig, QuantMethod, RunContext, register

CALIB = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
# Quantizing Softmax/LayerNorm/Add activations wrecks transformer accuracy; MatMuls carry the compute.
TRANSFORMER_OPS = ["MatMul", "Gemm", "Gather"]


class StaticConfig(MethodConfig):
    format: Literal["QDQ", "QOperator"] = Field("QDQ", description="Static quantization graph format.", json_schema_extra={"profile": "format"})
    activation_type: IntType = Field("uint8", description="Static INT8 activation type.", json_schema_extra={"profile": "activation_type"})
    weight_type: IntType = weight_type_field()
    per_channel: bool = per_channel_field()
    reduce_range: bool = reduce_range_field()
    symmetric_activations: bool = Field(
        False, description="Static: symmetric activation ranges.", json_schema_extra={"profile": "symmetric_activations"}
    )
    symmetric_weights: bool = Field(True, description="Static: symmetric weight ranges.", json_schema_extra={"profile": "symmetric_weights"})
    calib_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax",
        description=(
            "Static calibration: minmax (the observed range, an outlier stretches it), percentile (clips the "
            "top 0.001% of |x|, robust to rare outliers), entropy (picks the range that keeps the histogram's KL divergence "
            "smallest; slower)."
        ),
    )
    quantize_outputs: bool = Field(
        False,
        description=(
            "Static QDQ: also quantize MatMul/Gemm outputs (off by default: they feed the residual stream, whose outlier "
            "channels 8 bits cannot hold; QOperator always quantizes them)."
        ),
    )


@register
class Static(QuantMethod):
    name = "static"
    summary = "INT8 weights and activations, ranges calibrated on --calib-data"
    Config = StaticConfig
    smoothing = True
    # MiniLM-L6, QDQ, calibrated on 128 SST-2 train rows, 256 SST-2 dev rows: mean/worst cosine
    # 0.9866/0.9683 plain, 0.9945/0.9858 smoothed at 0.7 (benchmarks/static_compare.py)
    default_smooth_quant = 0.7
    calibration = "required"

    def check(self, settings: dict) -> None:
        if settings["format"] == "QOperator" and settings["activation_type"] == "int8" and settings["weight_type"] == "uint8":
            raise BadInput("static QOperator with int8 activations and uint8 weights is not supported by ONNX Runtime")

    def for_family(self, family: str | None, settings: dict, chosen_by: dict) -> None:
        if family == "transformer":
            settings["op_types"], chosen_by["op_types"] = TRANSFORMER_OPS, "default for transformer families"

    def run(self, src: Path, dst: Path, settings: dict, ctx: RunContext) -> dict:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

        from edgedeploy.quantize.calibration import stride_for  # onnxruntime.quantization imports onnx

        reader = ctx.reader()
        stride = stride_for(len(reader))
        s = settings
        quantize_static(
            str(src),
            str(dst),
            reader,
            quant_format=getattr(QuantFormat, s["format"]),
            activation_type=qtype(s["activation_type"]),
            weight_type=qtype(s["weight_type"]),
            per_channel=s["per_channel"],
            reduce_range=s["reduce_range"],
            calibrate_method=getattr(CalibrationMethod, CALIB[s["calib_method"]]),
            nodes_to_exclude=ctx.excluded or None,
            op_types_to_quantize=s.get("op_types") or None,
            nodes_to_quantize=ctx.only or None,
            calibration_cache_path=str(ctx.cache) if ctx.cache else None,
            extra_options={
                "ActivationSymmetric": s["symmetric_activations"],
                "WeightSymmetric": s["symmetric_weights"],
                "CalibStridedMinMax": stride,
                "MatMulConstBOnly": True,
                # a MatMul's output feeds the residual stream, whose outlier channels no 8-bit scale holds
                "OpTypesToExcludeOutputQuantization": [] if s["quantize_outputs"] else ["MatMul", "Gemm"],
            },
        )
        return {
            **{k: s[k] for k in StaticConfig.model_fields},
            "op_types": s.get("op_types") or "all supported",
            "calibration_samples": reader.seen,
            "calibration_stride": stride,
        }

    def tune_bases(self, rules: dict, have_calib: bool, have_fused: bool) -> tuple[list[dict], list[str]]:
        if not have_calib:
            return [], ["static: no --calib-data"]
        out, skipped = [("plain", {"format": "QDQ", "smooth_quant": 0.7})], []
        if rules["qoperator"]:
            out.append(("plain", {"format": "QOperator"}))
        else:
            skipped.append("static QOperator: the profile's target is not a CPU (QDQ only)")
        return out, skipped

    def tune_neighbours(self, settings: dict, rules: dict) -> list[dict]:
        flips = int8_neighbours(settings, rules)
        if settings.get("format") == "QDQ":
            flips.append({"calib_method": "percentile"})
        return flips
