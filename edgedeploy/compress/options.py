"""``PruneOptions`` and ``DistillOptions``: the settings of ``edgedeploy prune`` and
``edgedeploy distill``, declared once (flags, recipe ``compress:`` keys and records derive from
here). Both share the training settings of ``TrainingOptions``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgedeploy.core.options import Options


def _as_text(v):
    """A recipe may write ``heads: 0.2`` or ``student_layers: 3``: the same as the flag's text."""
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class TrainingOptions(Options):
    train_data: str | None = Field(None, description="Labeled training text (TSV/CSV/JSONL).")
    eval_data: str | None = Field(
        None, description="Labeled text to report accuracy before and after (e.g. dev.tsv).", json_schema_extra={"flag": "data"}
    )
    text_column: str = Field("text", min_length=1, description="Text column of the data files.")
    label_column: str = Field("label", min_length=1, description="Label column of the data files.")
    train_subset: int | None = Field(None, ge=1, description="Train on a seeded random subset of this many rows of --train-data.")
    lr: float = Field(3e-5, gt=0, description="Learning rate.")
    batch_size: int = Field(32, ge=1, le=4096, description="Training batch size.")
    max_length: int = Field(64, ge=1, le=8192, description="Token limit when training.")
    seed: int = Field(0, ge=0, description="Data order, dropout and subsets; the same seed gives the same weights.")

    @model_validator(mode="before")
    @classmethod
    def _old_data_key(cls, data):
        # 'data' used to be the training text; --data is now the evaluation text everywhere, so
        # the old key is refused rather than silently read as the other file.
        if isinstance(data, dict) and "data" in data:
            raise ValueError("'data' is no longer a key here: the training text is train_data, the evaluation text eval_data")
        return data


class PruneOptions(TrainingOptions):
    heads: str | None = Field(
        None, description="Attention heads to remove: a fraction of all heads (0.2), a count (14) or LAYER:HEAD,..;.. (0:1,2;3:0)."
    )
    ffn: float | None = Field(None, gt=0, lt=1, description="Fraction of feed-forward neurons to remove from every layer (0.25).")
    keep_layers: str | None = Field(None, description="Keep only these layers, e.g. 0,2,4 (applied first).")
    importance: Literal["gradient", "magnitude"] | None = Field(
        None, description="Ranking: gradient (needs --train-data; the default with it) or magnitude."
    )
    importance_samples: int = Field(512, ge=1, description="Training rows used to rank heads and neurons.")
    steps: int = Field(1, ge=1, le=100, description="Gradual schedule: prune in this many rounds, recovering after each.")
    recover_epochs: float = Field(0.0, ge=0, description="Recovery fine-tuning after each round (epochs over the training data; fractions allowed).")
    recover_alpha: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Recovery loss: weight of the hard labels; 1-alpha weighs the KL to the model before pruning (self-distillation, temperature 2).",
    )
    allow_empty_layer: bool = Field(False, description="Allow removing every head of a layer.")

    _numbers_as_text = field_validator("heads", "keep_layers", mode="before")(_as_text)


class DistillOptions(TrainingOptions):
    lr: float = Field(1e-4, gt=0, description="Learning rate.")
    student: str | None = Field(None, description="Student model directory (must share the teacher's tokenizer).")
    student_layers: str | None = Field(None, description="Or build the student from the teacher's layers: a count (2) or indices (0,2,4).")
    temperature: float = Field(2.0, gt=0, description="Softmax temperature of the soft (teacher) loss.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the hard-label loss; 1-alpha weighs the soft loss.")
    hidden_weight: float = Field(0.0, ge=0, description="Weight of the hidden-state MSE loss (same hidden size).")
    attention_weight: float = Field(0.0, ge=0, description="Weight of the MiniLM-style Q/K/V attention-relation loss.")
    relation_heads: int | None = Field(None, ge=1, description="Relation heads for the attention loss (default: the teacher's head count).")
    epochs: float = Field(1.0, gt=0, description="Epochs over the training data.")
    checkpoint_every: int = Field(50, ge=0, description="Steps between checkpoints in OUT.partial/ (0: none).")

    _numbers_as_text = field_validator("student_layers", mode="before")(_as_text)
