"""Typed stage records: what each stage of a run produced, as written to
``RUN_DIR/stages/<kind>__<name>.json`` and read back by the runner, the report and the gate.
Unknown fields are kept, so records written by other versions still load."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgedeploy.core.artifact import Artifact, file_sha256
from edgedeploy.core.errors import EdgeDeployError

Status = Literal["ok", "failed", "skipped", "cached", "not-run"]


class Result(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def document(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


class ArtifactResult(Result):
    artifact: str
    digest: str

    def intact(self) -> bool:
        """The artifact is still there, verified, with the digest the stage recorded."""
        try:
            return Artifact.load(self.artifact).digest == self.digest
        except EdgeDeployError:
            return False


class ExportResult(ArtifactResult):
    validation: dict = Field(default_factory=dict)


class QuantizeSummary(Result):
    method: str
    profile: str | None = None
    compression_ratio: float
    nodes_kept_float: int = 0
    warning: str | None = None


class QuantizeResult(ArtifactResult):
    fidelity: dict
    quantization: QuantizeSummary

    @classmethod
    def of(cls, art: Artifact, *, method: str | None = None, profile: str | None = None, **extra) -> QuantizeResult:
        """The record of a quantized artifact (``method``/``profile`` replace the manifest's, for tune)."""
        q = art.manifest.quantization
        summary = QuantizeSummary(
            method=method or q.method,
            profile=profile or q.profile,
            compression_ratio=q.compression_ratio,
            nodes_kept_float=len(q.nodes_kept_float),
            warning=q.warning,
        )
        fidelity = art.manifest.fidelity.model_dump(mode="json", exclude_none=True)
        return cls(artifact=str(art.path), digest=art.digest, fidelity=fidelity, quantization=summary, **extra)


class CompressResult(Result):
    model: str
    files: list
    method: str
    from_: str = Field(alias="from")
    parameters: dict
    accuracy: dict | None = None
    seconds: float


class EvalResult(Result):
    variant: str
    samples: int | None = None
    data: str | None = None
    task: dict | None = None
    fidelity: dict | None = None
    perplexity: dict | None = None
    note: str | None = None


class BenchResult(Result):
    results: list[dict]
    environment: dict
    profile: str | None = None
    measured: str = "measured"
    interleaved: bool = False
    note: str | None = None
    remote: dict | None = None


RESULTS: dict[str, type[Result]] = {
    "export": ExportResult,
    "quantize": QuantizeResult,
    "compress": CompressResult,
    "eval": EvalResult,
    "bench": BenchResult,
}


class StageRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    kind: str | None = None
    status: Status
    key: str | None = None
    seconds: float | None = None
    finished: str | None = None
    at: str | None = None
    result: dict | None = None
    error: str | None = None
    exit_code: int | None = None
    reason: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("ok", "cached")

    def typed(self) -> Result | None:
        """The result as its kind's model (None when the stage did not finish)."""
        if self.result is None or not self.done:
            return None
        kind = self.kind or self.id.partition(":")[0]
        return RESULTS[kind].model_validate(self.result)


def data_digests(opts) -> dict:
    """sha256 of the calibration and evaluation files a quantize or tune stage reads (its cache key)."""
    return {k: file_sha256(p) if p else None for k, p in (("calib", opts.calib_data), ("eval", opts.eval_data))}
