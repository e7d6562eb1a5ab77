"""``QuantizeOptions``: every setting of ``edgedeploy quantize``, declared once. The flags,
the recipe variant keys, the manifest's recorded options and the JSON Schema come from here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgedeploy.core.options import Options

Method = Literal["dynamic", "static", "fp16", "int4"]
IntType = Literal["int8", "uint8"]
BlockSize = Literal[16, 32, 64, 128, 256]
# settings.resolve() merges these with the profile's preset and the method's defaults
RESOLVED = (
    "weight_type",
    "activation_type",
    "per_channel",
    "reduce_range",
    "format",
    "calib_method",
    "quantize_outputs",
    "block_size",
    "symmetric",
    "accuracy_level",
    "int4_embeddings",
    "op_block_list",
    "int4_sensitive_8bit",
    "embedding_block_size",
    "embedding_bits",
    "lm_head_bits",
    "int4_algorithm",
)


class QuantizeOptions(Options):
    method: Method = Field(description="dynamic | static | fp16 | int4")
    profile: str | None = Field(None, description="Device profile whose quantization preset chooses the defaults ('auto': the closest to this host).")
    weight_type: IntType | None = Field(None, description="INT8 weight type (profile or int8).")
    activation_type: IntType | None = Field(None, description="Static INT8 activation type (profile or uint8).")
    per_channel: bool | None = Field(None, description="Per-channel weight scales.", json_schema_extra={"off_flag": "--per-tensor"})
    reduce_range: bool | None = Field(None, description="7-bit weights (for CPUs without VNNI).")
    format: Literal["QDQ", "QOperator"] | None = Field(None, description="Static quantization graph format.")
    calib_data: Path | None = Field(None, description="Calibration data: TSV/CSV/JSONL text or .npz of inputs.")
    calib_samples: int = Field(128, ge=1, description="Calibration samples.")
    calib_method: Literal["minmax", "entropy", "percentile"] | None = Field(
        None,
        description=(
            "Static calibration: minmax (default; the observed range, an outlier stretches it), percentile (clips the "
            "top 0.001% of |x|, robust to rare outliers), entropy (picks the range that keeps the histogram's KL divergence "
            "smallest; slower)."
        ),
    )
    smooth_quant_min_ratio: float = Field(
        6.0,
        ge=0,
        description=(
            "SmoothQuant: leave a tensor alone when its largest channel is under this x its median channel "
            "(its Mul costs time and buys little; 0 smooths every tensor)."
        ),
    )
    quantize_outputs: bool | None = Field(
        None,
        description=(
            "Static QDQ: also quantize MatMul/Gemm outputs (off by default: they feed the residual stream, whose outlier "
            "channels 8 bits cannot hold; QOperator always quantizes them)."
        ),
    )
    smooth_quant: float | None = Field(
        None,
        gt=0,
        lt=1,
        description=(
            "Dynamic/static INT8: SmoothQuant with this alpha (0.5-0.7 typical) moves activation outliers into per-channel "
            "weight scales first (needs --calib-data; pair it with per-channel weights)."
        ),
    )
    random_calibration: bool = Field(False, description="Calibrate on random inputs (recorded as a warning in the manifest).")
    text_column: str = Field("text", min_length=1, description="Text column of TSV/CSV/JSONL data.")
    label_column: str = Field("label", min_length=1, description="Label column for --max-accuracy-drop.")
    eval_data: Path | None = Field(None, description="Real samples for fidelity (default: the calibration data).", json_schema_extra={"flag": "data"})
    eval_samples: int = Field(64, ge=1, description="Samples for fidelity and accuracy-aware searches.")
    exclude: list[str] = Field(default_factory=list, description="Keep in float: node name, op type, glob or PyTorch module name. Repeatable.")
    block_size: BlockSize | None = Field(None, description="int4 block size (profile or 32).")
    symmetric: bool | None = Field(None, description="int4 symmetric or asymmetric blocks.", json_schema_extra={"off_flag": "--asymmetric"})
    accuracy_level: int | None = Field(None, ge=0, le=4, description="int4 MatMulNBits accuracy_level (0-4).")
    int4_embeddings: bool | None = Field(None, description="Also block-quantize embedding Gathers (int4; default on).")
    embedding_block_size: BlockSize | None = Field(None, description="int4: block size for embedding tables (default 64).")
    int4_sensitive_8bit: int | None = Field(
        None, ge=0, le=1000, description="int4: keep the N most sensitive MatMuls (measured) at 8-bit (default 2)."
    )
    embedding_bits: Literal[4, 8] | None = Field(None, description="int4: bits for embedding tables (4: GatherBlockQuantized; 8: int8 rows).")
    int4_algorithm: Literal["rtn", "hqq", "k_quant", "gptq"] | None = Field(
        None,
        description="int4: ONNX Runtime's weight-only algorithm for the 4-bit MatMuls: rtn (round to nearest, default), hqq (half-quadratic), "
        "k_quant (llama.cpp-style k-quants), gptq (calibrated on --calib-data text).",
    )
    lm_head_bits: Literal[4, 8] | None = Field(None, description="int4: bits for a decoder's lm_head MatMul (default 4).")
    int4_preset: Literal["accuracy", "compression"] | None = Field(
        None,
        description="int4 presets (EdgeFormer's modes; other int4 flags still apply on top). accuracy: block 64, asymmetric, "
        "embeddings and lm_head at 8 bits, the 2 most sensitive MatMuls at 8 bits. compression: block 128, symmetric, everything "
        "at 4 bits (embeddings and lm_head too).",
    )
    op_block_list: list[str] = Field(default_factory=list, description="fp16: extra op types to keep in float32. Repeatable.")
    min_mean_cosine: float | None = Field(
        None, ge=-1, le=1, description="Accuracy-aware: keep the most sensitive nodes in float until the mean cosine >= this."
    )
    min_worst_cosine: float | None = Field(None, ge=-1, le=1, description="Accuracy-aware: also require the worst sample's cosine >= this.")
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1, description="Accuracy-aware: max task-accuracy drop (a fraction) vs the parent on labeled --data."
    )

    def overrides(self) -> dict:
        """The settings that a profile preset or a method default may fill in."""
        return {k: (getattr(self, k) or None) if k == "op_block_list" else getattr(self, k) for k in RESOLVED}

    def accuracy_aware(self) -> bool:
        return any(v is not None for v in (self.min_mean_cosine, self.min_worst_cosine, self.max_accuracy_drop))

    def uses_calibration(self) -> bool:
        """Calibration text feeds static calibration, int4's sensitivity ranking and accuracy-aware searches."""
        return self.method in ("static", "int4") or self.accuracy_aware() or bool(self.smooth_quant)
