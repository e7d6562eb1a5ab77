"""``Budgets``: what a release gate checks, declared once. A budget named ``min_X`` or
``max_X`` limits the report column ``X`` (``min_mean_cosine`` limits ``mean_cosine``,
``max_size_mb`` limits ``size_mb``), so report, CSV, recipe and gate share one name each."""

from __future__ import annotations

from pydantic import Field

from edgedeploy.core.options import Options

TIMED = {"p50_ms", "p90_ms", "throughput", "ttft_ms", "decode_tokens_per_s"}  # read from a benchmark, so only as trustworthy as its CV


def _budget(unit: str, scale: float, help_text: str, **limits):
    return Field(None, description=help_text, json_schema_extra={"unit": unit, "scale": scale}, **limits)


class Budgets(Options):
    max_accuracy_drop: float | None = _budget(
        "points", 100.0, "Largest task-accuracy drop against the float reference, a fraction (0.01 = 1 point).", ge=0, le=1
    )
    min_accuracy: float | None = _budget("%", 100.0, "Lowest task accuracy, a fraction.", ge=0, le=1)
    min_accuracy_retained: float | None = _budget("", 1.0, "Lowest accuracy as a fraction of the float reference's.", ge=0)
    min_mean_cosine: float | None = _budget("", 1.0, "Lowest mean cosine of outputs against the float reference.", ge=-1, le=1)
    min_worst_cosine: float | None = _budget("", 1.0, "Lowest cosine of the worst sample against the float reference.", ge=-1, le=1)
    max_size_mb: float | None = _budget("MB", 1.0, "Largest model file size, MB (1e6 bytes).", gt=0)
    min_compression: float | None = _budget("x", 1.0, "Smallest size ratio against the float reference.", gt=0)
    max_p50_ms: float | None = _budget("ms", 1.0, "Largest median latency on the target, ms.", gt=0)
    max_p90_ms: float | None = _budget("ms", 1.0, "Largest p90 latency on the target, ms (needs at least 64 iterations).", gt=0)
    min_throughput: float | None = _budget("samples/s", 1.0, "Lowest throughput on the target, samples/s.", gt=0)
    max_ttft_ms: float | None = _budget("ms", 1.0, "Decoders (a target with generate): largest median time to first token, ms.", gt=0)
    min_decode_tokens_per_s: float | None = _budget("tokens/s", 1.0, "Decoders (a target with generate): lowest decode rate, tokens/s.", gt=0)
    max_perplexity_increase: float | None = _budget(
        "%", 100.0, "Decoders: largest perplexity increase on data.eval against the float reference, a fraction (0.03 = +3 %).", ge=0
    )

    def set(self) -> dict[str, float]:
        """The budgets that are set, by name."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def merged(self, override: Budgets | None) -> Budgets:
        """Recipe-wide budgets with a target's own budgets on top (per key)."""
        return Budgets(**{**self.set(), **(override.set() if override else {})})


def column(budget: str) -> str:
    """The report column a budget limits: ``max_p90_ms`` -> ``p90_ms``."""
    return budget.split("_", 1)[1]


def direction(budget: str) -> str:
    return budget.split("_", 1)[0]


def unit(budget: str) -> tuple[str, float]:
    extra = Budgets.model_fields[budget].json_schema_extra
    return extra["unit"], extra["scale"]


ACCURACY = tuple(b for b in Budgets.model_fields if "accuracy" in b)
