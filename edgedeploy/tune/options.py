"""``TuneOptions``: every setting of ``edgedeploy tune``, declared once (flags, recipe keys,
the manifest's record and the JSON Schema come from here)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgedeploy.core.options import split_names
from edgedeploy.device.options import RemoteOptions
from edgedeploy.measure_options import MeasureOptions
from edgedeploy.quantize import methods
from edgedeploy.runtimes.stats import MIN_SAMPLES

Objective = Literal["p50", "p90", "throughput", "size", "decode", "ttft"]


def tunable_methods() -> tuple[str, ...]:
    """The registered methods that have a tune search space."""
    return tuple(m.name for m in methods.all_methods() if m.tunable())


class TuneOptions(MeasureOptions, RemoteOptions):
    """What ``tune`` searches, how it measures and the budget the winner must meet."""

    host: str | None = Field(None, description="Measure on user@host[:port] or a ~/.ssh/config Host over SSH (default: this host).")
    methods: list[str] = Field(
        default_factory=lambda: ["dynamic", "static"],
        description="Methods to search (comma-separated or repeated): the quantization methods with a tune space (dynamic, static, int4 built in; static needs --calib-data).",
    )
    objective: Objective = Field(
        "p50",
        description="What the winner minimises: p50 or p90 latency, size, or (with --generate) ttft; throughput and decode tokens/s are maximised.",
    )
    min_mean_cosine: float | None = Field(None, ge=-1, le=1, description="Budget: mean cosine against the float parent on --data.")
    min_worst_cosine: float | None = Field(None, ge=-1, le=1, description="Budget: the worst sample's cosine.")
    max_accuracy_drop: float | None = Field(None, ge=0, le=1, description="Budget: task-accuracy drop (a fraction) on labeled --data.")
    max_size_mb: float | None = Field(None, gt=0, description="Budget: model size on disk, MB.")
    calib_data: Path | None = Field(
        None, description="Calibration and sensitivity text (TSV/CSV/JSONL) or .npz; never used for the fidelity reported."
    )
    eval_data: Path | None = Field(
        None, description="Real samples for fidelity and accuracy (labeled for --max-accuracy-drop).", json_schema_extra={"flag": "data"}
    )
    text_column: str = Field("text", min_length=1, description="Text column of TSV/CSV/JSONL data.")
    label_column: str = Field("label", min_length=1, description="Label column for --max-accuracy-drop.")
    eval_samples: int = Field(
        64, ge=1, description="Rows of --data every candidate is compared on; the winner is reported on the next as many (held out)."
    )
    calib_samples: int = Field(64, ge=1, description="Calibration samples for static candidates.")
    max_minutes: float = Field(15.0, gt=0, description="Time bound: no new candidate is built after 70% of it; measuring and publishing finish.")
    session_search: bool = Field(
        True,
        description="Also search session options (threads, graph optimization, memory arena) for the winner.",
        json_schema_extra={"off_flag": "--no-session-search"},
    )
    resume: bool = Field(False, description="Continue an interrupted search from OUT.tune-state (built and measured candidates are kept).")
    require_stable: bool = Field(False, description="Exit 4 when the winner's latency stays unstable after a re-run.")
    iterations: int = Field(100, ge=1, description="Steady-state inferences per candidate (upper bound).")
    duration: float = Field(30.0, gt=0, description="Time bound in seconds for each measurement round.")
    warmup: int = Field(10, ge=0, description="Warm-up inferences per candidate.")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str]) -> list[str]:
        names = split_names(v, tunable_methods(), "method")
        if not names:
            raise ValueError("give at least one method")
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _consistent(self):
        if self.objective == "size" and self.max_size_mb is not None:
            raise ValueError("--objective size already minimises the size; --max-size-mb contradicts it (drop one)")
        if self.max_accuracy_drop is not None and self.eval_data is None:
            raise ValueError("--max-accuracy-drop needs labeled --data")
        if self.objective == "p90" and self.iterations < MIN_SAMPLES[90]:
            raise ValueError(f"--objective p90 needs --iterations >= {MIN_SAMPLES[90]} (a p90 from fewer samples is not reported)")
        if self.objective in ("decode", "ttft") and not self.generate:
            raise ValueError(f"--objective {self.objective} is a generation rate: give --generate (with --prompt-tokens, --new-tokens)")
        if self.baseline is not None:
            raise ValueError("--baseline torch is a bench option; tune compares its candidates with the float parent")
        if self.scenario != "single-stream":
            raise ValueError("tune measures candidates interleaved in the single-stream scenario")
        return self

    def budget(self) -> dict:
        return {k: getattr(self, k) for k in ("min_mean_cosine", "min_worst_cosine", "max_accuracy_drop", "max_size_mb")}
