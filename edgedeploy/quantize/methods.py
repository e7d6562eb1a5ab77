"""The four quantization methods. Each takes the pre-processed float model and writes
the quantized one, returning the settings it actually used."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.core.errors import ValidationFailed
from edgedeploy.quantize import embeddings
from edgedeploy.runtimes.generate import PAST, prefill_feeds

QTYPES = {"int8": "QInt8", "uint8": "QUInt8"}
CALIB = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return getattr(QuantType, QTYPES[name])


def dynamic(src: Path, dst: Path, s: dict, exclude: list[str], only: list[str] | None = None) -> dict:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=_qtype(s["weight_type"]),
        per_channel=s["per_channel"],
        reduce_range=s["reduce_range"],
        nodes_to_exclude=exclude or None,
        nodes_to_quantize=only or None,
        extra_options={"MatMulConstBOnly": True},
    )
    return {k: s[k] for k in ("weight_type", "per_channel", "reduce_range")}


def static(src: Path, dst: Path, s: dict, exclude: list[str], reader, only: list[str] | None = None, cache: Path | None = None) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from edgedeploy.quantize.calibration import stride_for  # onnxruntime.quantization imports onnx

    stride = stride_for(len(reader))
    quantize_static(
        str(src),
        str(dst),
        reader,
        quant_format=getattr(QuantFormat, s["format"]),
        activation_type=_qtype(s["activation_type"]),
        weight_type=_qtype(s["weight_type"]),
        per_channel=s["per_channel"],
        reduce_range=s["reduce_range"],
        calibrate_method=getattr(CalibrationMethod, CALIB[s["calib_method"]]),
        nodes_to_exclude=exclude or None,
        op_types_to_quantize=s.get("op_types") or None,
        nodes_to_quantize=only or None,
        calibration_cache_path=str(cache) if cache else None,
        extra_options={
            "ActivationSymmetric": s["symmetric_activations"],
            "WeightSymmetric": s["symmetric_weights"],
            "CalibStridedMinMax": stride,
            "MatMulConstBOnly": True,
            # a MatMul's output feeds the residual stream, whose outlier channels no 8-bit scale holds
            "OpTypesToExcludeOutputQuantization": [] if s.get("quantize_outputs") else ["MatMul", "Gemm"],
        },
    )
    return {
        **{
            k: s[k]
            for k in (
                "format",
                "activation_type",
                "weight_type",
                "per_channel",
                "reduce_range",
                "symmetric_activations",
                "symmetric_weights",
                "calib_method",
                "quantize_outputs",
            )
        },
        "op_types": s.get("op_types") or "all supported",
        "calibration_samples": reader.seen,
        "calibration_stride": stride,
    }


def fp16(src: Path, dst: Path, s: dict, exclude: list[str], only: list[str] | None = None) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(s.get("op_block_list") or ()))
    if only:
        exclude = [n.name for n in model.graph.node if n.name not in only]
    model = convert_float_to_float16(model, keep_io_types=s["keep_io_types"], op_block_list=block, node_block_list=exclude or None)
    onnx.save(model, str(dst))
    return {
        "keep_io_types": s["keep_io_types"],
        "op_block_list_extra": list(s.get("op_block_list") or ()),
        "converter": "onnxruntime.transformers.float16",
    }


def int4(src: Path, dst: Path, s: dict, exclude: list[str], only: list[str] | None = None, reader=None) -> dict:
    """Weight-only block quantization: MatMul -> MatMulNBits (4-bit; ``keep_8bit`` nodes at
    8-bit) and, when asked, embedding Gathers -> GatherBlockQuantized (4-bit): the word
    embeddings are half of a small BERT, so MatMuls alone give under 2x."""
    import onnx

    model = onnx.load(str(src))
    heads = embeddings.lm_heads(model) if s.get("lm_head_bits", 4) == 8 else []
    keep8 = list(dict.fromkeys(n for n in [*(s.get("keep_8bit") or []), *heads] if n not in exclude))
    eight_bit_tables = s["int4_embeddings"] and s.get("embedding_bits", 4) == 8 and (only is None)
    algo = s.get("int4_algorithm") or "rtn"
    model = _nbits(model, "MatMul", 4, s["block_size"], s, exclude + keep8, only, algo, reader)
    if s["int4_embeddings"] and not eight_bit_tables:
        model = _nbits(model, "Gather", 4, s["embedding_block_size"], s, exclude, only)
    if keep8:
        model = _nbits(model, "MatMul", 8, s["block_size"], s, exclude, keep8)
    tables8 = embeddings.gathers_to_int8(model, exclude) if eight_bit_tables else 0
    onnx.save(model, str(dst))
    used = {k: s[k] for k in ("block_size", "symmetric", "accuracy_level", "int4_embeddings", "embedding_block_size")} | {"int4_algorithm": algo}
    return used | {"kept_8bit": keep8, "lm_head_8bit": heads, "embedding_tables_8bit": tables8}


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
