"""An ONNX graph's signature as the manifest records it: inputs and outputs with their symbolic
dims, the opset, the parameter count, and one entry per graph of a multi-graph artifact."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.core.artifact import load_graph
from edgedeploy.core.manifest import Graph


def onnx_signature(model_path: Path) -> tuple[list[dict], list[dict], int, int]:
    """Inputs/outputs with symbolic dims, the default-domain opset and parameter count."""
    import onnx

    model = load_graph(model_path)

    def describe(values):
        out = []
        for v in values:
            tt = v.type.tensor_type
            dims = []
            for d in tt.shape.dim:
                dims.append(d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?"))
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name, "shape": dims})
        return out

    init_names = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    params = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        params += n
    return describe(inputs), describe(model.graph.output), opset, params


def graph_entries(root: Path, graph_files: dict) -> tuple[list[Graph], int]:
    """Each graph's manifest entry (role, file, signature, parameters), and the model's
    parameters: encoder + decoder (the decoder-with-past graph holds a copy of the decoder's)."""
    graphs = []
    for role, name in graph_files.items():
        ins, outs, _, params = onnx_signature(root / name)
        graphs.append(Graph(role=role, file=name, inputs=ins, outputs=outs, parameters=params))
    return graphs, sum(g.parameters or 0 for g in graphs if g.role != "decoder-with-past")
