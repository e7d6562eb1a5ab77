"""FP16: float32 weights and arithmetic converted to float16 (for GPU and Jetson targets)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgedeploy.quantize.methods.registry import ENCODER_DECODER, SINGLE, MethodConfig, QuantMethod, RunContext, register


class Fp16Config(MethodConfig):
    keep_io_types: bool = Field(True, description="fp16: keep float32 inputs and outputs (a Cast at each end).")
    op_block_list: list[str] = Field(default_factory=list, description="fp16: extra op types to keep in float32. Repeatable.")


@register
class Fp16(QuantMethod):
    name = "fp16"
    summary = "float16 weights and arithmetic (GPU/Jetson; size only on most CPUs)"
    Config = Fp16Config
    graphs = frozenset({SINGLE, ENCODER_DECODER})

    def run(self, src: Path, dst: Path, settings: dict, ctx: RunContext) -> dict:
        import onnx
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

        model = onnx.load(str(src))
        block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(settings["op_block_list"]))
        exclude = ctx.excluded
        if ctx.only:
            exclude = [n.name for n in model.graph.node if n.name not in ctx.only]
        model = convert_float_to_float16(model, keep_io_types=settings["keep_io_types"], op_block_list=block, node_block_list=exclude or None)
        onnx.save(model, str(dst))
        return {
            "keep_io_types": settings["keep_io_types"],
            "op_block_list_extra": list(settings["op_block_list"]),
            "converter": "onnxruntime.transformers.float16",
        }
