"""Stage identity, in one place: which stages a recipe has, what each is called, and which
stage makes a variant's artifact. Stages, records, report and ``--only`` all use these."""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_MODEL = "source"  # the recipe's source, in ``from:`` and ``model:``
KINDS = ("compress", "export", "quantize", "eval", "bench")


@dataclass(frozen=True)
class StageId:
    kind: str
    name: str | None = None  # None: the source's export (the only stage without a name)

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> StageId:
        kind, _, name = str(text).partition(":")
        return cls(kind, name or None)

    @property
    def record_name(self) -> str:
        """The stage record's file name in ``RUN_DIR/stages``."""
        return f"{self.kind}.json" if self.name is None else f"{self.kind}__{self.name}.json"


def compress(step: str) -> StageId:
    return StageId("compress", step)


def export(model: str = SOURCE_MODEL) -> StageId:
    return StageId("export") if model == SOURCE_MODEL else StageId("export", model)


def quantize(variant: str) -> StageId:
    return StageId("quantize", variant)


def evaluate(variant: str) -> StageId:
    return StageId("eval", variant)


def bench(target: str) -> StageId:
    return StageId("bench", target)


def producer(method: str, model: str, variant: str) -> StageId:
    """The stage that makes a variant's artifact: its model's export (float), or its quantize."""
    return export(model) if method == "float" else quantize(variant)


def reference_variant(variants: dict) -> str:
    """The float variant of the source: accuracy drops and fidelity are measured against it.
    ``variants`` maps names to objects or dicts with ``method`` and ``model``."""

    def get(v, k, default=None):
        return v.get(k, default) if isinstance(v, dict) else getattr(v, k, default)

    return next((n for n, v in variants.items() if get(v, "method") == "float" and get(v, "model", SOURCE_MODEL) == SOURCE_MODEL), "float")
