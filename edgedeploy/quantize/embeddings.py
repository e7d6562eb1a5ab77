"""Embedding tables at 8 bits, and a decoder's lm_head, for the int4 presets.

ONNX Runtime's weight-only quantizer writes GatherBlockQuantized at 4 bits only. An 8-bit
table here is int8 rows with one float scale per row (symmetric), read with plain ONNX ops:
``Cast(Gather(Wq, ids)) * Unsqueeze(Gather(scale, ids), -1)``, so every runtime runs it.
"""

from __future__ import annotations

import numpy as np

from edgedeploy.quantize.smoothing import drop_unused_initializers


def embedding_gathers(model, exclude=()) -> list:
    """Gather nodes that read a 2-D float initializer along axis 0 (embedding tables)."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type != "Gather" or n.name in exclude or not n.input or n.input[0] not in inits:
            continue
        w = inits[n.input[0]]
        axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
        if len(w.dims) == 2 and w.data_type == TensorProto.FLOAT and axis == 0:
            out.append(n)
    return out


def lm_heads(model) -> list[str]:
    """MatMul nodes that produce a decoder's ``logits`` output (or are named lm_head). A decoder's
    logits are per token (batch, sequence, vocab); a classifier's rank-2 logits have no lm_head."""
    outputs = {o.name for o in model.graph.output if o.name == "logits" and len(o.type.tensor_type.shape.dim) == 3}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and ("lm_head" in n.name or set(n.output) & outputs)]


def gathers_to_int8(model, exclude=()) -> int:
    """Replace each embedding Gather by its int8-row form in place; returns how many."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    count, nodes = 0, []
    targets = {n.name for n in embedding_gathers(model, exclude)}
    for n in model.graph.node:
        if n.name not in targets:
            nodes.append(n)
            continue
        w = numpy_helper.to_array(inits[n.input[0]]).astype(np.float32)
        scale = np.maximum(np.abs(w).max(1), 1e-12) / 127.0
        q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
        base = n.name.strip("/").replace("/", "_") or f"gather{count}"
        qw, sc = f"{base}_int8_weight", f"{base}_int8_scale"
        model.graph.initializer.extend([numpy_helper.from_array(q, qw), numpy_helper.from_array(scale.astype(np.float32), sc)])
        ids, out = n.input[1], n.output[0]
        axes = f"{base}_int8_axes"
        model.graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), axes))
        nodes += [
            helper.make_node("Gather", [qw, ids], [f"{base}_rows"], name=f"{n.name}_int8"),
            helper.make_node("Cast", [f"{base}_rows"], [f"{base}_rows_f"], name=f"{n.name}_int8_cast", to=1),
            helper.make_node("Gather", [sc, ids], [f"{base}_scales"], name=f"{n.name}_int8_scale"),
            helper.make_node("Unsqueeze", [f"{base}_scales", axes], [f"{base}_scales_u"], name=f"{n.name}_int8_unsqueeze"),
            helper.make_node("Mul", [f"{base}_rows_f", f"{base}_scales_u"], [out], name=f"{n.name}_int8_mul"),
        ]
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    drop_unused_initializers(model)
    return count
