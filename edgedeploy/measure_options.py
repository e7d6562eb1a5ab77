"""How to measure: the settings ``edgedeploy bench``, a recipe's targets and ``tune`` share, with
their ranges (the harness that honours them is ``runtimes/``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edgedeploy.core.options import Options, split_names
from edgedeploy.device.profiles import KNOWN_PROVIDERS
from edgedeploy.runtimes import inputs as rt_inputs
from edgedeploy.runtimes.limits import MAX_THREADS, THREADS_PER_CPU

DEFAULT_SHAPE = "batch=1,sequence=128"


class MeasureOptions(Options):
    """How to measure: shared by ``edgedeploy bench`` and a recipe's targets."""

    profile: str | None = Field(
        None, description="Device profile (default: the closest to this host, as 'edgedeploy doctor' picks; 'auto' the same)."
    )
    shape: str = Field(
        DEFAULT_SHAPE,
        min_length=1,
        description="Bind symbolic dims; 'batch'/'sequence' are short names. Dims left open take the size validation ran them at.",
    )
    scenario: Literal["single-stream", "multi-stream", "offline", "server"] = Field(
        "single-stream",
        description="What is measured, as MLPerf LoadGen defines it: one query at a time; queries of --samples-per-query samples (p99 of the query); throughput; Poisson arrivals at --qps (p99 from arrival).",
    )
    iterations: int = Field(
        200, ge=1, description="Steady-state inferences per model (upper bound; multi-stream and server run at least the 662 queries p99 needs)."
    )
    duration: float = Field(60.0, gt=0, description="Time bound in seconds for the steady state.")
    warmup: int = Field(20, ge=0, description="Warm-up inferences (bounded to 5 s).")
    threads: int | None = Field(
        None, ge=1, le=MAX_THREADS, description=f"Override the profile's intra-op threads (at most {THREADS_PER_CPU} per CPU of the device)."
    )
    concurrency: int = Field(
        1, ge=1, le=256, description="Sessions for offline and server, one thread each driving it; they split the intra-op threads (up to 256)."
    )
    samples_per_query: int = Field(8, ge=1, le=1024, description="Samples in one multi-stream query.")
    max_batch: int = Field(
        64,
        ge=1,
        le=4096,
        description="Offline: the largest batch tried; the search doubles from --shape's batch while it fits and pays (1 or --shape's batch: no search).",
    )
    qps: float | None = Field(None, gt=0, description="Poisson arrival rate for the server scenario.")
    latency_budget: float | None = Field(None, gt=0, description="p99 budget in ms for the server scenario: the run's verdict.")
    cooldown_c: float | None = Field(
        None,
        gt=0,
        le=150,
        description="Before each model, wait (up to 10 min) until the device's hottest thermal zone is at or below this, degrees C.",
    )
    baseline: Literal["torch"] | None = Field(None, description="Also time the PyTorch source model eagerly, interleaved.")
    note: str | None = Field(None, description="A label stored with the results and shown with the table (e.g. 'emulated').")
    providers: list[str] = Field(
        default_factory=list, description="Execution providers in order, overriding the profile's (comma-separated or repeated)."
    )
    allow_fallback: bool = Field(False, description="Run on what onnxruntime has when a requested provider is missing (recorded); default: exit 3.")
    loadgen: bool = Field(
        False,
        description="Drive the scenario with MLPerf's own LoadGen (mlcommons-loadgen installed on the device); its summary goes in the results.",
    )
    require_provider: bool = Field(
        False,
        description="Exit 3 when any node falls back to the CPU from the requested execution provider (per-node placement from one profiled run).",
    )
    generate: bool = Field(
        False, description="Time greedy generation with the KV cache (a decoder exported with --task text-generation-with-past): TTFT and tokens/s."
    )
    prompt_tokens: int = Field(32, ge=1, le=65536, description="With --generate: prompt length in tokens (prefill).")
    new_tokens: int = Field(32, ge=1, le=65536, description="With --generate: tokens generated greedily after the prompt (decode).")

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: list[str]) -> list[str]:
        return split_names(v, KNOWN_PROVIDERS, "execution provider")

    @field_validator("shape")
    @classmethod
    def _shape_parses(cls, v: str) -> str:
        try:
            rt_inputs.parse_shape(v)
        except rt_inputs.ShapeError as exc:
            raise ValueError(str(exc).removeprefix("--shape ")) from None
        return v
