"""Deriving an artifact from a parent (quantize, tune): the scratch and staging folders, the
parent's companion files, and a manifest that carries the parent's source, lineage, generation
record and vocabulary over, with the new graphs' signature and the step's own sections."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgedeploy.core.artifact import Artifact, graph_entries, is_artifact, onnx_signature
from edgedeploy.core.atomic import scratch_directory, staged_directory


@contextmanager
def derive(out: Path, force: bool) -> Iterator[tuple[Path, Path]]:
    """(scratch folder, staging folder) beside ``out``: the stage is published to ``out`` when the
    block ends without an error, the scratch folder is removed either way."""
    with scratch_directory(out) as work, staged_directory(out, force=force, is_artifact=is_artifact) as stage:
        yield Path(work), stage


def copy_companions(parent: Artifact, stage: Path) -> None:
    """The parent's tokenizer and config files: exactly those its manifest lists (verified, so
    plain files), never the model graphs or their external data, never through a link."""
    model = set(parent.model_files())
    for name in sorted(set(parent.manifest["files"]) - model):
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parent.path / name, stage / name, follow_symlinks=False)


def derived_manifest(parent: Artifact, stage: Path, step: str, **sections) -> dict:
    """The manifest of the artifact staged in ``stage``, made from ``parent`` by ``step``."""
    if len(parent.graph_files) > 1:
        graphs, params = graph_entries(stage, parent.graph_files)
        enc = next(g for g in graphs if g["role"] == "encoder")
        signature = {"model_file": parent.manifest.get("model_file"), "graphs": graphs, "opset": parent.manifest["opset"]}
        signature |= {"inputs": enc["inputs"], "outputs": enc["outputs"], "parameters": params}
    else:
        inputs, outputs, opset, params = onnx_signature(stage / "model.onnx")
        signature = {"model_file": "model.onnx", "opset": opset, "inputs": inputs, "outputs": outputs, "parameters": params}
    generation = parent.manifest.get("generation")
    return {
        "kind": "edgedeploy-artifact",
        "source": parent.manifest["source"],
        "lineage": {"parent": parent.digest, "parent_path": str(parent.path), "step": step},
        **signature,
        "vocab_size": parent.manifest.get("vocab_size"),
        **({"generation": generation} if isinstance(generation, dict) else {}),
        **sections,
    }
