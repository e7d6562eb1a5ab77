"""The device's ``results.json``, read as untrusted: a size limit, strict JSON, and the fields
the host reads checked against a schema. A device reports measurements, never names: model
names, order and output file names come from the job the host sent."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgedeploy.core.errors import BadInput
from edgedeploy.core.options import describe_error

MAX_RESULTS_BYTES = 64 << 20  # raw latencies of a long run are a few MB


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class Latency(_Row):
    p50: float = Field(ge=0)
    p90: float | None = Field(None, ge=0)
    p99: float | None = Field(None, ge=0)
    mean: float = Field(ge=0)
    cv: float = Field(ge=0)


class DeviceState(_Row):
    throttled: list[str] = Field(default_factory=list, max_length=64, description="Why the device cannot vouch for the timing.")


class Result(_Row):
    name: str
    device_state: DeviceState | None = None
    latency_ms: Latency
    throughput_per_s: float | None = Field(None, ge=0)
    stable: bool
    samples: int = Field(ge=1)
    model_size_bytes: int | None = Field(None, ge=0)


class Environment(_Row):
    cpu_model: str | None = None
    arch: str | None = None
    cores: int | None = None
    onnxruntime: str | None = None
    providers_used: list[str] | None = None
    threads: dict[str, int | None] = Field(default_factory=dict)


class DeviceResults(_Row):
    scenario: str
    interleaved: bool = False
    profile: str | None = None
    results: list[Result] = Field(min_length=1)
    environment: Environment


def parse(raw: bytes, where: str, model_names: list[str]) -> dict:
    """The results document, checked; ``BadInput`` (exit 2) naming ``where`` otherwise."""
    if len(raw) > MAX_RESULTS_BYTES:
        raise BadInput(f"{where}: results.json is over {MAX_RESULTS_BYTES:,} bytes; refusing it")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise BadInput(f"{where}: results.json is not valid JSON ({str(exc)[:200]})") from None
    try:
        DeviceResults.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BadInput(f"{where}: results.json {'.'.join(map(str, err['loc'])) or 'document'}: {describe_error(err)}") from None
    got = [r["name"] for r in doc["results"]]
    if got != model_names:
        raise BadInput(f"{where}: results.json reports models {got[:5]!r}, but the job sent {model_names!r}; the device's results do not match")
    doc.pop("outputs", None)  # file names are the host's, from the job
    return doc


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")
