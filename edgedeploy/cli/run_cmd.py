from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.release.run import raise_for, run


@click.command("run")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--gate", is_flag=True, help="Exit 1 when a budget is missed, 4 when a needed benchmark was unstable.")
@click.option("--only", help="Run just this stage (e.g. bench:local) or kind (compress, export, quantize, eval, bench); the rest must be cached.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value, e.g. data.eval=dev.tsv or targets.0.iterations=100."
)
@click.option("--run-dir", type=click.Path(path_type=Path), help="Where stages, artifacts and the report go (default: runs/<recipe name>).")
@json_option
def command(recipe, gate, only, overrides, run_dir, as_json):
    """Take RECIPE's source model to measured, gated artifacts: export, quantize variants,
    evaluate, benchmark on each target, report. Unchanged stages are skipped."""

    echo = (lambda msg: click.echo(msg, err=True)) if as_json else click.echo
    summary = run(recipe, gate=gate, only=only, overrides=overrides, run_dir=run_dir, echo=echo)
    if as_json:
        emit_json(summary)
    else:
        for c in summary["gate"]["checks"]:
            mark = "ok  " if c["passed"] and c["trusted"] else "MISS" if not c["passed"] and c["trusted"] else "??  "
            click.echo(f"  {mark} {c['message']}")
        g = summary["gate"]
        click.echo(
            f"gate: {'passed' if g['passed'] else 'FAILED' if g['exit_code'] == 1 else 'NOT TRUSTED (unstable benchmark)'}"
            + ("" if gate else " (informational; pass --gate to enforce)")
        )
        click.echo(f"summary: {Path(summary['run_dir']) / 'summary.json'}")
        click.echo(f"report: {summary['report']['report.html']}")
    raise_for(summary, gate)
