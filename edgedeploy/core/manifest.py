"""The manifest (``edgedeploy.json``) as a typed model, end to end: every step builds a
``Manifest`` (``core/artifact.finalize_manifest`` hashes the files and writes it last),
``Artifact.load`` validates the file into one, and code reads its attributes; only this module
and ``core/artifact.py`` see it as JSON. ``edgedeploy schema manifest`` prints it as JSON Schema.
Fields a newer edgedeploy adds are kept (``extra="allow"``) and written back unchanged."""

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
    description: str | None = None
    weights: str | None = Field(None, description="--weights: a state dict loaded into a --factory module.")
    family: str | None = Field(None, description="transformer | module: picks default tolerances and quantization op types.")
    task: str | None = None
    model_type: str | None = None


class Lineage(_Open):
    parent: str | None = Field(None, description="Digest of the parent artifact (null for an export).")
    parent_path: str | None = None
    step: str = Field(description="export, adopt, quantize:<method> or tune:<method>.")
    via: str | None = Field(None, description="What stood between the parent and this graph (tune's fused export).")


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
    exclude_patterns: dict[str, list[str]] = Field(default_factory=dict, description="Each --exclude pattern and the nodes it matched.")
    preprocess: dict | None = Field(None, description="ONNX Runtime's quantization pre-processing, as run.")
    accuracy_search: dict | None = Field(None, description="--max-accuracy-drop: the layers kept in float and both splits' accuracy.")
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
    inputs: dict | str | None = Field(None, description="Where the compared inputs came from (file and rows, or random).")
    reference: str | None = Field(None, description="Digest of the artifact compared against.")


class Generation(_Open):
    """A model exported with its KV cache: what generation needs to know."""

    kv_cache: bool = True
    layers: int = Field(ge=0, description="Layers of the KV cache.")
    max_positions: int | None = None
    eos_token_id: int | list[int] | None = None
    architecture: Literal["encoder-decoder"] | None = Field(None, description="encoder-decoder for three graphs; absent for a decoder.")
    decoder_start_token_id: int | None = None


class RunSettings(_Open):
    """Session settings the artifact asks for (``edgedeploy tune``'s winner): what was measured is what runs."""

    intra_op_threads: int | None = None
    graph_optimization_level: str | None = None
    cpu_mem_arena: bool | None = None
    disabled_optimizers: list[str] | None = None

    def for_job(self, threads: int | None) -> dict | None:
        """The settings for a measuring job (the device validates them); ``threads`` given wins over the thread count."""
        out = self.model_dump(mode="json", exclude_none=True)
        if threads:
            out.pop("intra_op_threads", None)
        return out or None


class ExportRecord(_Open):
    exporter: str = Field(description="Which exporter wrote the graph.")
    versions: dict[str, str | None] = Field(default_factory=dict)
    variant: str | None = None
    attempts_failed: list = Field(default_factory=list, description="Exporters tried first, and why each failed.")
    optimize: dict = Field(default_factory=dict, description="--optimize: the fusions applied (applied: false when not requested).")
    seconds: float | None = None
    options: dict = Field(default_factory=dict)

    @property
    def fused(self) -> bool:
        return bool(self.optimize.get("applied"))


class Validation(_Open):
    passed: bool | None = Field(None, description="Absent when validation could not run (an adopted ONNX model has no PyTorch source).")
    reason: str | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    atol: float | None = None
    rtol: float | None = None
    cases: list[dict] = Field(default_factory=list, description="Each case's input shapes and per-output comparison.")
    inputs_from: str | None = None
    generation: dict | None = Field(None, description="Greedy tokens through the KV cache against PyTorch's.")

    def first_shapes(self) -> dict:
        """{input name: shape} of the first case (empty when there is none)."""
        shapes = self.cases[0].get("inputs") if self.cases else None
        return shapes if isinstance(shapes, dict) else {}


class TuneRecord(_Open):
    """What the tuned artifact keeps of its search (the whole table is tune.json)."""

    winner: dict
    objective: str | None = None
    budget: dict | None = None
    target: str | None = None
    profile: str | None = None
    candidates: int = 0
    pareto_front: list = Field(default_factory=list)
    split: dict | None = None
    final_round: dict | None = Field(None, description="The winner, quantize_dynamic's defaults and the float parent in one round after the choice.")
    report: str = "tune.json"
    selection_fidelity: Fidelity | None = Field(None, description="The winner on the rows that selected it; fidelity is on held-out rows.")


def _written_fields(schema: dict) -> None:
    """Fields with a default in code that every written manifest holds (finalize_manifest sets them)."""
    schema["required"] = sorted({*schema.get("required", []), *WRITTEN})


WRITTEN = ("schema_version", "files", "size_bytes")


class Manifest(_Open):
    model_config = ConfigDict(extra="allow", json_schema_extra=_written_fields)
    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    kind: Literal["edgedeploy-artifact"] = "edgedeploy-artifact"
    source: SourceInfo
    lineage: Lineage | None = None
    model_file: str = "model.onnx"
    graphs: list[Graph] | None = Field(
        None, description="An artifact of several graphs (a seq2seq model): each with its role. model_file is the encoder's."
    )

    files: dict[str, FileEntry] = Field(default_factory=dict, description="Every file of the artifact but the manifest, by relative path.")
    size_bytes: int = Field(0, ge=0)
    opset: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parameters: int | None = None
    vocab_size: int | None = None
    generation: Generation | None = None
    run: RunSettings | None = Field(None, description="Session settings the artifact asks for (edgedeploy tune's winner), checked on the device.")
    export: ExportRecord | None = None
    validation: Validation | None = None
    quantization: Quantization | None = None
    fidelity: Fidelity | None = None
    tune: TuneRecord | None = None
    tool_versions: dict[str, str | None] = Field(default_factory=dict)
    created: str | None = None
    digest: str | None = None

    @property
    def graph_files(self) -> dict[str, str]:
        """{role: file} of every graph; a single-graph artifact has the one role ``model``."""
        return {g.role: g.file for g in self.graphs} if self.graphs else {"model": self.model_file}

    def graph(self, role: str) -> Graph:
        return next(g for g in self.graphs or [] if g.role == role)

    @property
    def is_decoder(self) -> bool:
        """A model exported with its KV cache (a decoder, or an encoder-decoder's decoder)."""
        return self.generation is not None

    @property
    def start_token(self) -> int:
        """An encoder-decoder's first decoder token (0 when the export did not say)."""
        return (self.generation.decoder_start_token_id if self.generation else None) or 0

    @property
    def max_positions(self) -> int | None:
        return self.generation.max_positions if self.generation else None

    def derived(self) -> Manifest:
        """A copy for a new artifact made from this one's files: the file list and digest are the new artifact's to write."""
        return self.model_copy(deep=True, update={"files": {}, "size_bytes": 0, "digest": None, "created": None, "tool_versions": {}})

    def as_json(self) -> dict:
        """The manifest as ``edgedeploy.json`` holds it (absent optional sections left out)."""
        return self.model_dump(mode="json", exclude_none=True)

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
