"""Deriving an artifact from a parent (quantize): the scratch and staging folders, the
parent's companion files, and a manifest that carries the parent's source, lineage, generation
record and vocabulary over, with the new graphs' signature and the step's own sections."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgedeploy.core.artifact import MODEL, Artifact, is_artifact
from edgedeploy.core.atomic import scratch_directory, staged_directory
from edgedeploy.core.manifest import Lineage, Manifest
from edgedeploy.core.signature import graph_entries, onnx_signature


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
    for name in sorted(set(parent.manifest.files) - model):
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parent.path / name, stage / name, follow_symlinks=False)


def derived_manifest(parent: Artifact, stage: Path, step: str, **sections) -> Manifest:
    """The manifest of the artifact staged in ``stage``, made from ``parent`` by ``step``: the
    parent's source, generation record and vocabulary, the new graphs' signature, ``sections``."""
    pm = parent.manifest
    if len(parent.graph_files) > 1:
        graphs, params = graph_entries(stage, parent.graph_files)
        enc = next(g for g in graphs if g.role == "encoder")
        signature = {"model_file": pm.model_file, "graphs": graphs, "opset": pm.opset, "inputs": enc.inputs, "outputs": enc.outputs}
    else:
        inputs, outputs, opset, params = onnx_signature(stage / MODEL)
        signature = {"model_file": MODEL, "opset": opset, "inputs": inputs, "outputs": outputs}
    return Manifest(
        source=pm.source,
        lineage=Lineage(parent=parent.digest, parent_path=str(parent.path), step=step),
        parameters=params,
        vocab_size=pm.vocab_size,
        generation=pm.generation,
        **signature,
        **sections,
    )
