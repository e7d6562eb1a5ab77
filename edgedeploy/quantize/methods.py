"""The four quantization methods. Each takes the pre-processed float model and writes
the quantized one, returning the settings it actually used."""

from __future__ import annotations

from pathlib import Path

QTYPES = {"int8": "QInt8", "uint8": "QUInt8"}
CALIB = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return getattr(QuantType, QTYPES[name])


def dynamic(src: Path, dst: Path, s: dict, exclude: list[str]) -> dict:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=_qtype(s["weight_type"]), per_channel=s["per_channel"],
                     reduce_range=s["reduce_range"], nodes_to_exclude=exclude or None,
                     extra_options={"MatMulConstBOnly": True})
    return {k: s[k] for k in ("weight_type", "per_channel", "reduce_range")}


def static(src: Path, dst: Path, s: dict, exclude: list[str], reader) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from .calibration import stride_for

    stride = stride_for(len(reader))
    quantize_static(
        str(src), str(dst), reader, quant_format=getattr(QuantFormat, s["format"]),
        activation_type=_qtype(s["activation_type"]), weight_type=_qtype(s["weight_type"]), per_channel=s["per_channel"],
        reduce_range=s["reduce_range"], calibrate_method=getattr(CalibrationMethod, CALIB[s["calibration_method"]]),
        nodes_to_exclude=exclude or None, op_types_to_quantize=s.get("op_types") or None,
        extra_options={"ActivationSymmetric": s["symmetric_activations"], "WeightSymmetric": s["symmetric_weights"],
                       "CalibStridedMinMax": stride, "MatMulConstBOnly": True},
    )
    return {**{k: s[k] for k in ("format", "activation_type", "weight_type", "per_channel", "reduce_range", "symmetric_activations",
                                 "symmetric_weights", "calibration_method")}, "op_types": s.get("op_types") or "all supported", "calibration_samples": reader.seen, "calibration_stride": stride}


def fp16(src: Path, dst: Path, s: dict, exclude: list[str]) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(s.get("op_block_list") or ()))
    model = convert_float_to_float16(model, keep_io_types=s["keep_io_types"], op_block_list=block, node_block_list=exclude or None)
    onnx.save(model, str(dst))
    return {"keep_io_types": s["keep_io_types"], "op_block_list_extra": list(s.get("op_block_list") or ()), "converter": "onnxruntime.transformers.float16"}


def int4(src: Path, dst: Path, s: dict, exclude: list[str]) -> dict:
    """Weight-only block quantization: MatMul -> MatMulNBits and, when asked, embedding
    Gathers -> GatherBlockQuantized (the word embeddings are half of a small BERT)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(src))
    ops = ("MatMul", "Gather") if s["embeddings"] else ("MatMul",)
    cfg = DefaultWeightOnlyQuantConfig(block_size=s["block_size"], is_symmetric=s["symmetric"], accuracy_level=s["accuracy_level"],
                                       op_types_to_quantize=ops, quant_axes=(("MatMul", 0), ("Gather", 1)))
    q = MatMulNBitsQuantizer(model, block_size=s["block_size"], is_symmetric=s["symmetric"], accuracy_level=s["accuracy_level"],
                             nodes_to_exclude=exclude or [], algo_config=cfg)
    q.process()
    q.model.save_model_to_file(str(dst), use_external_data_format=False)
    return {k: s[k] for k in ("block_size", "symmetric", "accuracy_level", "embeddings")}
