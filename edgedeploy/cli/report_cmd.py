from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.release.report import build


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@json_option
def command(run_dir, as_json):
    """Write report.json, results.csv, report.md and a self-contained report.html for RUN_DIR
    (made by 'edgedeploy run')."""

    report, paths = build(run_dir)
    if as_json:
        emit_json(report)
        return
    for p in paths.values():
        click.echo(str(p))
