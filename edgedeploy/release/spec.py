"""The typed shape of a release recipe: ``RecipeSpec`` and its parts. Variant keys are the
``QuantizeOptions`` fields, target keys the ``MeasureOptions``/``RemoteOptions`` fields, compress
steps the ``PruneOptions``/``DistillOptions`` fields, budgets the ``Budgets`` fields: a recipe
key is the command-line flag in snake_case, everywhere. ``edgedeploy schema recipe`` prints
this as JSON Schema."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from edgedeploy.compress.options import DistillOptions, PruneOptions
from edgedeploy.core.options import Options
from edgedeploy.device.options import RemoteOptions
from edgedeploy.export import ExportSettings
from edgedeploy.measure_options import MeasureOptions
from edgedeploy.quantize.options import QuantizeOptions
from edgedeploy.release.budgets import Budgets
from edgedeploy.release.stage_ids import SOURCE_MODEL
from edgedeploy.runtimes.stats import UNSTABLE_CV
from edgedeploy.tune.options import Objective

# names that become file and directory names: letters, digits, '.', '_', '-', not starting with '.'
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class DataSpec(Options):
    """Data shared by the stages; paths are relative to the recipe file."""

    eval: str | None = Field(None, description="Labeled (or plain) text for accuracy and fidelity: TSV/CSV/JSONL.")
    calib: str | None = Field(None, description="Calibration text: static calibration, int4 sensitivity, accuracy-aware searches.")
    text_column: str = Field("text", min_length=1, description="Text column of the data files.")
    text_pair_column: str | None = Field(None, description="Second text column for pair tasks.")
    label_column: str | None = Field("label", description="Label column; null for unlabeled text (fidelity only).")
    max_rows: int | None = Field(None, ge=1, description="Evaluate the first N rows of data.eval.")


TUNE_KEYS = ("objective", "methods", "max_minutes", "max_size_mb", "tune_on")


class VariantSpec(QuantizeOptions):
    """One variant: a quantize setting per key, ``method: float`` for a model's float export, or
    ``method: tune`` for the fastest variant within its budget, measured on a recipe target."""

    EXTRA_METHODS = ("float", "tune")

    method: str = Field(description="float, tune or a quantization method (edgedeploy quantize --help lists them).")
    gate: bool = Field(True, description="Check this variant against the budgets (false for the float reference).")
    model: str = Field(SOURCE_MODEL, description="The model it is made from: source, or a step under compress:.")
    objective: Objective | None = Field(None, description="tune: what the winner minimises (p50, p90, size) or maximises (throughput).")
    methods: list[str] = Field(default_factory=list, description="tune: the methods searched (default dynamic, static).")
    max_minutes: float | None = Field(None, gt=0, description="tune: time bound of the search (default 15).")
    max_size_mb: float | None = Field(None, gt=0, description="tune: budget on model size, MB.")
    tune_on: str | None = Field(None, description="tune: the recipe target the candidates are measured on (default: the first).")
    budgets: Budgets | None = Field(None, description="Budgets for this variant only (over the recipe's and the target's, per key).")
    targets: list[Name] = Field(
        default_factory=list,
        description="The recipe targets that measure this variant (default: all). With profile: auto, one artifact per device profile among them, each measured on its own.",
    )

    @model_validator(mode="after")
    def _tune_keys(self):
        if self.method != "tune":
            given = [k for k in TUNE_KEYS if getattr(self, k) not in (None, [])]  # a resolved recipe.json lists every key
            if given:
                raise ValueError(f"{given[0]} applies to method tune, not {self.method}")
        return self


class _Step(Options):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(SOURCE_MODEL, alias="from", description="The model this step starts from: source or an earlier step.")


class PruneStep(PruneOptions, _Step):
    method: Literal["prune"] = Field(description="prune")


class DistillStep(DistillOptions, _Step):
    method: Literal["distill"] = Field(description="distill")


CompressStep = Annotated[PruneStep | DistillStep, Field(discriminator="method")]
STEP_KINDS = {"prune": PruneStep, "distill": DistillStep}


class TargetSpec(MeasureOptions, RemoteOptions):
    """Where and how the variants are measured; ``budgets`` override the recipe's per key."""

    name: Name = Field(description="The target's name (letters, digits, '.', '_', '-').")
    profile: str = Field("auto", description="Device profile; 'auto' is the closest to this host. An SSH target names its device.")
    host: str | None = Field(None, description="user@host[:port] or a ~/.ssh/config Host: measure there over SSH.")
    max_cv: float = Field(UNSTABLE_CV, gt=0, description="A timing with a larger coefficient of variation is not trusted by the gate.")
    emulated: bool = Field(False, description="Timings come from an emulator: labelled EMULATED in the report, never trusted by a latency budget.")
    allow_emulated: bool = Field(
        False, description="Let an emulated target's timings pass or fail latency budgets (for testing a pipeline, not a device)."
    )
    budgets: Budgets | None = Field(None, description="Budgets for this target only (override the recipe's per key).")


class RecipeSpec(Options):
    """A release recipe (``edgedeploy run RECIPE.yaml``)."""

    name: Name | None = Field(None, description="The run's name (default: the recipe file's stem).")
    source: str = Field(
        min_length=1,
        description="A Hugging Face directory, a Hub id from the cache, minilm-l6, reference:sst2|banking77, or an ONNX model (a .onnx file or an optimum export directory) adopted as is.",
    )
    run_dir: str | None = Field(None, description="Where stages, artifacts and the report go (default: runs/<name>).")
    export: ExportSettings = Field(default_factory=ExportSettings, description="Export settings.")
    data: DataSpec | None = Field(None, description="Data files, relative to the recipe.")
    variants: dict[Name, VariantSpec] = Field(min_length=1, description="name -> quantize settings (or method: float).")
    compress: dict[Name, CompressStep] = Field(default_factory=dict, description="PyTorch-side steps before export, in order.")
    targets: list[TargetSpec] = Field(min_length=1, description="Where the variants are measured.")
    budgets: Budgets = Field(default_factory=Budgets, description="Budgets for every target.")
