"""INT4 weight-only: MatMul -> MatMulNBits (4-bit blocks; chosen MatMuls at 8) and, when asked,
embedding Gathers -> GatherBlockQuantized (the word embeddings are half of a small BERT, so
MatMuls alone give under 2x)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from edgedeploy.core.errors import ValidationFailed
from edgedeploy.quantize import embeddings
from edgedeploy.quantize.methods.registry import ENCODER_DECODER, SINGLE, MethodConfig, QuantMethod, RunContext, register
from edgedeploy.runtimes.generate import PAST, prefill_feeds

BlockSize = Literal[16, 32, 64, 128, 256]


class Int4Config(MethodConfig):
    block_size: BlockSize = Field(32, description="int4 block size.", json_schema_extra={"profile": "int4_block_size"})
    symmetric: bool = Field(False, description="int4 symmetric or asymmetric blocks.", json_schema_extra={"off_flag": "--asymmetric"})
    accuracy_level: int = Field(
        4, ge=0, le=4, description="int4 MatMulNBits accuracy_level (0-4).", json_schema_extra={"profile": "int4_accuracy_level"}
    )
    int4_embeddings: bool = Field(True, description="Also block-quantize embedding Gathers (int4).")
    embedding_block_size: BlockSize = Field(64, description="int4: block size for embedding tables.")
    int4_sensitive_8bit: int = Field(2, ge=0, le=1000, description="int4: keep the N most sensitive MatMuls (measured) at 8-bit.")
    embedding_bits: Literal[4, 8] = Field(4, description="int4: bits for embedding tables (4: GatherBlockQuantized; 8: int8 rows).")
    lm_head_bits: Literal[4, 8] = Field(4, description="int4: bits for a decoder's lm_head MatMul.")
    int4_algorithm: Literal["rtn", "hqq", "k_quant", "gptq"] = Field(
        "rtn",
        description="int4: ONNX Runtime's weight-only algorithm for the 4-bit MatMuls: rtn (round to nearest), hqq (half-quadratic), "
        "k_quant (llama.cpp-style k-quants), gptq (calibrated on --calib-data text).",
    )
    int4_preset: Literal["accuracy", "compression"] | None = Field(
        None,
        description="int4 presets (EdgeFormer's modes; other int4 flags still apply on top). accuracy: block 64, asymmetric, "
        "embeddings and lm_head at 8 bits, the 2 most sensitive MatMuls at 8 bits. compression: block 128, symmetric, everything "
        "at 4 bits (embeddings and lm_head too).",
    )


@register
class Int4(QuantMethod):
    name = "int4"
    summary = "4-bit weight-only blocks (MatMulNBits), embeddings too"
    Config = Int4Config
    graphs = frozenset({SINGLE, ENCODER_DECODER})
    calibration = "optional"
    preset_setting = "int4_preset"
    presets: ClassVar[dict[str, dict]] = {
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

    def calibration_needed(self, settings: dict) -> str | None:
        return "--int4-algorithm gptq calibrates on text: give --calib-data FILE" if settings["int4_algorithm"] == "gptq" else None

    def run(self, src: Path, dst: Path, settings: dict, ctx: RunContext) -> dict:
        import onnx

        s, exclude, only = settings, ctx.excluded, ctx.only
        algo = s["int4_algorithm"]
        reader = ctx.reader() if algo == "gptq" and only is None else None
        if algo == "gptq" and only is not None:
            algo = "rtn"  # a sensitivity probe quantizes one node: round-to-nearest
        model = onnx.load(str(src))
        heads = embeddings.lm_heads(model) if s["lm_head_bits"] == 8 else []
        keep8 = list(dict.fromkeys(n for n in [*(s.get("keep_8bit") or []), *heads] if n not in exclude))
        eight_bit_tables = s["int4_embeddings"] and s["embedding_bits"] == 8 and (only is None)
        model = _nbits(model, "MatMul", 4, s["block_size"], s, exclude + keep8, only, algo, reader)
        if s["int4_embeddings"] and not eight_bit_tables:
            model = _nbits(model, "Gather", 4, s["embedding_block_size"], s, exclude, only)
        if keep8:
            model = _nbits(model, "MatMul", 8, s["block_size"], s, exclude, keep8)
        tables8 = embeddings.gathers_to_int8(model, exclude) if eight_bit_tables else 0
        onnx.save(model, str(dst))
        used = {k: s[k] for k in ("block_size", "symmetric", "accuracy_level", "int4_embeddings", "embedding_block_size")} | {"int4_algorithm": algo}
        return used | {"kept_8bit": keep8, "lm_head_8bit": heads, "embedding_tables_8bit": tables8}

    def tune_bases(self, rules: dict, have_calib: bool, have_fused: bool) -> tuple[list[dict], list[str]]:
        return [("plain", {})], []

    def tune_neighbours(self, settings: dict, rules: dict) -> list[dict]:
        return [{"block_size": 64}, {"block_size": 128}, {"symmetric": True}, {"accuracy_level": 0}]


def _nbits(model, op: str, bits: int, block: int, s: dict, exclude: list[str], include: list[str] | None, algo: str = "rtn", reader=None):
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    if include:  # ORT's nodes_to_include adds to the op types rather than restricting: restrict by exclusion
        exclude = list(exclude or []) + [n.name for n in model.graph.node if n.op_type == op and n.name not in include]
    if algo != "rtn":
        cfg = _algorithm(algo, block, bits, op, model, reader)
    else:
        cfg = DefaultWeightOnlyQuantConfig(
            block_size=block,
            is_symmetric=s["symmetric"],
            accuracy_level=s["accuracy_level"],
            op_types_to_quantize=(op,),
            quant_axes=(("MatMul", 0), ("Gather", 1)),
            bits=bits,
        )
    q = MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=block,
        is_symmetric=s["symmetric"],
        accuracy_level=s["accuracy_level"],
        nodes_to_exclude=exclude or [],
        algo_config=cfg,
    )
    try:
        q.process()
    except (ValueError, RuntimeError, IndexError, np.linalg.LinAlgError) as exc:
        if algo == "rtn":
            raise
        raise ValidationFailed(
            f"--int4-algorithm {algo}: ONNX Runtime's quantizer failed on this model ({type(exc).__name__}: {str(exc)[:160]})"
        ) from None
    return q.model.model


def _algorithm(algo: str, block: int, bits: int, op: str, model, reader):
    """ORT's weight-only configs beyond round-to-nearest (their own symmetry choices)."""
    from onnxruntime.quantization import matmul_nbits_quantizer as nb

    if algo == "hqq":
        return nb.HQQWeightOnlyQuantConfig(block_size=block, bits=bits, op_types_to_quantize=(op,))
    if algo == "k_quant":
        return nb.KQuantWeightOnlyQuantConfig(op_types_to_quantize=(op,))
    return nb.GPTQWeightOnlyQuantConfig(calibration_data_reader=_Prefill(reader, model), block_size=block, op_types_to_quantize=(op,))


class _Prefill:
    """A calibration reader whose feeds are completed for a KV-cache decoder's prefill (empty past)."""

    def __init__(self, reader, model):
        decoder = any(i.name.startswith(PAST) for i in model.graph.input)
        sess = _GraphInputs(model) if decoder else None
        # read up front: ORT copies the reader (a generator inside would not copy); calibration sets are small
        self.feeds = [f if sess is None else prefill_feeds(sess, f) for f in iter(reader.get_next, None)]
        self.i = 0

    def get_next(self):
        self.i += 1
        return self.feeds[self.i - 1] if self.i <= len(self.feeds) else None

    def rewind(self):
        self.i = 0

    def __iter__(self):
        return iter(self.feeds)

    def __len__(self):
        return len(self.feeds)


class _GraphInputs:
    """What ``prefill_feeds`` reads of a session (``get_inputs()``: name, shape, type), taken from
    the graph itself, so no session is built just to read the past's shapes."""

    def __init__(self, model):
        from types import SimpleNamespace

        init = {i.name for i in model.graph.initializer}
        self.inputs = [
            SimpleNamespace(
                name=v.name,
                type={1: "tensor(float)", 10: "tensor(float16)", 7: "tensor(int64)"}.get(v.type.tensor_type.elem_type, "other"),
                shape=[d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in v.type.tensor_type.shape.dim],
            )
            for v in model.graph.input
            if v.name not in init
        ]

    def get_inputs(self):
        return self.inputs
