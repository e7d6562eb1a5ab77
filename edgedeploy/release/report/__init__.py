"""``edgedeploy report RUN_DIR``: report.json, results.csv, report.md and a self-contained
report.html (plots embedded as SVG) from a run directory, with the gate's verdict."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.release.report.collect import collect
from edgedeploy.release.report.render import write_all


def build(run_dir: Path) -> tuple[dict, dict[str, Path]]:
    report = collect(run_dir)
    return report, write_all(report, run_dir)
