"""The manifest (``edgedeploy.json``) as a typed model: ``Artifact.load`` checks every manifest
against it, and ``edgedeploy schema manifest`` prints it as JSON Schema. Fields other
versions add are kept (``extra="allow"``), so old and newer artifacts still load."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file's bytes.")
    size: int = Field(ge=0, description="Size in bytes.")


class TensorSpec(_Open):
    name: str
    dtype: str
    shape: list[int | str | None] = Field(description="Dims: an integer, or a symbolic name such as batch_size.")


class SourceInfo(_Open):
    kind: str = Field(description="huggingface | torchscript | factory | reference | onnx")
    name: str | None = None
    path: str | None = None
    family: str | None = Field(None, description="transformer | module: picks default tolerances and quantization op types.")
    task: str | None = None
    model_type: str | None = None


class Lineage(_Open):
    parent: str | None = Field(None, description="Digest of the parent artifact (null for an export).")
    parent_path: str | None = None
    step: str = Field(description="export, or quantize:<method>.")


GraphRole = Literal["encoder", "decoder", "decoder-with-past"]


class Graph(_Open):
    role: GraphRole = Field(description="encoder | decoder (first step, no past) | decoder-with-past (each later step).")
    file: str = Field(description="The graph's ONNX file, relative to the artifact.")
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parameters: int | None = None


class Quantization(_Open):
    method: str
    profile: str | None = None
    settings: dict = Field(description="The settings ONNX Runtime was called with.")
    chosen_by: dict[str, str] = Field(default_factory=dict, description="Who chose each setting: flag, profile NAME or default.")
    options: dict | None = Field(None, description="Every quantize option as given (see QuantizeOptions).")
    nodes_kept_float: list[str] = Field(default_factory=list)
    model_bytes: int
    parent_model_bytes: int
    compression_ratio: float
    notes: list[str] = Field(default_factory=list)
    warning: str | None = None


class Fidelity(_Open):
    samples: int
    mean_cosine: float
    worst_cosine: float | None = Field(None, description="The worst sample's cosine.")
    max_abs_diff: float
    top1_agreement: float | None = None


class Manifest(_Open):
    schema_version: int = Field(ge=1, le=SCHEMA_VERSION)
    kind: Literal["edgedeploy-artifact"] = "edgedeploy-artifact"
    source: SourceInfo
    lineage: Lineage | None = None
    model_file: str = "model.onnx"
    graphs: list[Graph] | None = Field(
        None, description="An artifact of several graphs (a seq2seq model): each with its role. model_file is the encoder's."
    )

    files: dict[str, FileEntry] = Field(description="Every file of the artifact but the manifest, by relative path.")
    size_bytes: int = Field(ge=0)
    opset: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parameters: int | None = None
    vocab_size: int | None = None
    generation: dict | None = Field(None, description="A decoder exported with its KV cache: kv_cache, layers, max_positions, eos_token_id.")
    run: dict | None = Field(None, description="Session settings the artifact asks for (edgedeploy tune's winner), checked on the device.")
    export: dict | None = None
    validation: dict | None = None
    quantization: Quantization | None = None
    fidelity: Fidelity | None = None
    tool_versions: dict[str, str | None] = Field(default_factory=dict)
    created: str | None = None
    digest: str | None = None

    @model_validator(mode="after")
    def _one_graph_per_role(self):
        if self.graphs is None:
            return self
        roles = [g.role for g in self.graphs]
        if len(set(roles)) != len(roles) or "encoder" not in roles:
            raise ValueError(f"graphs: each role at most once, an encoder among them (got {', '.join(roles) or 'none'})")
        encoder = next(g.file for g in self.graphs if g.role == "encoder")
        if encoder != self.model_file:
            raise ValueError(f"graphs: the encoder's file {encoder!r} is not model_file {self.model_file!r}")
        return self
