"""Tracing a PyTorch module to one ONNX graph with transformers 5's exporter
(``transformers.exporters.OnnxExporter``: ``torch.export``, then ``torch.onnx``), with the input,
output and dim names edgedeploy's runtime reads; and the small helpers the wrappers share."""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings
from pathlib import Path

import numpy as np

from edgedeploy.exporters import decoder, torchlib_registry

B, SEQ, PAST, ENC, DEC = "batch_size", "sequence_length", "past_sequence_length", "encoder_sequence_length", "decoder_sequence_length"
# the sizes the graphs are traced at: distinct, and above 1, so that no dim is taken for a constant
TRACE = {B: 2, SEQ: 5, PAST: 7, ENC: 6, DEC: 3}


def forward_params(model) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def cache_kw(model) -> str:
    """transformers 5.x calls the cache argument ``cache``; earlier releases ``past_key_values``."""
    return "cache" if "cache" in forward_params(model) else "past_key_values"


def text_inputs(model, batch: int, seq: int, rng) -> dict:
    import torch

    vocab = int(decoder.text_config(model.config).vocab_size)
    low = 3 if vocab > 8 else 0
    feeds = {"input_ids": torch.from_numpy(rng.integers(low, vocab, size=(batch, seq), dtype=np.int64))}
    params = forward_params(model)
    if "attention_mask" in params:
        feeds["attention_mask"] = torch.ones(batch, seq, dtype=torch.int64)
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", 0):
        feeds["token_type_ids"] = torch.zeros(batch, seq, dtype=torch.int64)
    return feeds


def wrapper(forward, config):
    import torch

    class Graph(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.config = config

        def forward(self, **feeds):
            return forward(self.model, feeds)

    return Graph


def pairs(flat: list) -> list:
    return list(zip(flat[0::2], flat[1::2]))


def flat_cache(cache) -> list:
    return [t for layer in cache.layers for t in (layer.keys, layer.values)]


def index(name: str) -> int:
    return int(name.rsplit("_", 1)[1])


def quiet():
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def export_graph(module, feeds: dict, axes: dict, names: dict, out: Path, opset: int | None) -> None:
    """Trace ``module`` on ``feeds`` with ``axes`` dynamic, rename its inputs, outputs and dims to
    ``names`` (exporter name -> ONNX name) and the dims' names, and write ``out``."""
    import onnx_ir
    import torch
    from torch.export import Dim
    from transformers.exporters import OnnxConfig, OnnxExporter

    dynamic = {k: {a: Dim.DYNAMIC for a in axes.get(k, {})} for k in feeds}
    config = OnnxConfig(dynamic_shapes=dynamic, opset_version=opset)
    with warnings.catch_warnings(), contextlib.redirect_stdout(None), torch.no_grad(), torchlib_registry.reused():
        warnings.simplefilter("ignore")
        program, _ = OnnxExporter().export_program(module, feeds, config)
    graph = program.graph
    symbols = {}
    for value in graph.inputs:
        key = value.name.removeprefix("input.")
        for axis, dim_name in axes.get(key, {}).items():
            sym = value.shape[axis] if value.shape is not None else None
            if isinstance(sym, onnx_ir.SymbolicDim) and sym.value and re.fullmatch(r"s\d+", sym.value):
                symbols[sym.value] = dim_name
        value.name = names.get(key, key)
    for value in graph.outputs:
        value.name = names.get(value.name, value.name)
    rename_dims(graph, symbols)
    unwrap_scopes(graph)
    size = sum(v.const_value.nbytes for v in graph.initializers.values() if v.const_value is not None)
    external = {"external_data": f"{out.name}_data"} if size > 1_800_000_000 else {}
    onnx_ir.save(program, str(out), **external)


def rename_dims(graph, symbols: dict) -> None:
    """Replace the tracer's dim symbols (``s43``) by their names wherever they appear, sums too."""
    import onnx_ir

    if not symbols:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, symbols)) + r")\b")
    values = [*graph.inputs, *graph.outputs, *(o for node in graph for o in node.outputs)]
    for value in values:
        if value.shape is None:
            continue
        dims = [
            onnx_ir.SymbolicDim(pattern.sub(lambda m: symbols[m.group(1)], d.value)) if isinstance(d, onnx_ir.SymbolicDim) and d.value else d
            for d in value.shape
        ]
        value.shape = onnx_ir.Shape(dims)


SCOPES = "pkg.torch.onnx.name_scopes"


def unwrap_scopes(graph) -> None:
    """Record each node's PyTorch module path as the user's model names it (``encoder.layer.5``),
    without the wrapper's ``model`` attribute, so ``quantize --exclude MODULE`` finds it."""
    import ast

    for node in graph.all_nodes():
        raw = node.metadata_props.get(SCOPES)
        if not raw:
            continue
        scopes = ast.literal_eval(raw)
        node.metadata_props[SCOPES] = repr([s.removeprefix("model.") for s in scopes if s not in ("", "model")])
