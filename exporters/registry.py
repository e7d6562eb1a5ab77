"""Maps a resolved source kind to the exporter that handles it.

Each entry takes (source, stage, **options) and returns the exporter's info dict:
family, exporter, torch_fn and validation cases.
"""

from __future__ import annotations

from pathlib import Path

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters import huggingface, torch_module


def _huggingface(src, stage: Path, *, task, opset, weights, input_specs, trust_pickle, trust_remote_code=False):
    if weights or input_specs:
        raise BadInput("--weights/--input apply to --factory and .pt sources; a Hugging Face directory carries its own")
    return huggingface.export(src.path, stage, task, opset, trust_remote_code)


def _module(model, stage, input_specs, opset):
    if not input_specs:
        raise BadInput("a torch module source needs --input name:dtype:dims (e.g. --input input:float32:batch,3,224,224)")
    specs = [torch_module.parse_input_spec(s) for s in input_specs]
    return torch_module.export(model, specs, stage, opset)


def _factory(src, stage: Path, *, task, opset, weights, input_specs, trust_pickle, trust_remote_code=False):
    if trust_remote_code:
        raise BadInput("--trust-remote-code applies to Hugging Face sources")
    model = torch_module.load_factory(src.name, Path(weights) if weights else None, trust_pickle)
    return _module(model, stage, input_specs, opset)


def _torchscript(src, stage: Path, *, task, opset, weights, input_specs, trust_pickle, trust_remote_code=False):
    model, how = torch_module.load_pt(src.path, trust_pickle)
    info = _module(model, stage, input_specs, opset)
    info["loaded_as"] = how
    return info


EXPORTERS = {"huggingface": _huggingface, "factory": _factory, "torchscript": _torchscript}


def export(src, stage: Path, **options) -> dict:
    return EXPORTERS[src.kind](src, stage, **options)
