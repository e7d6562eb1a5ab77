import sys
import time
from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.options import click_options, from_cli
from edgedeploy.tune.options import TuneOptions
from edgedeploy.tune.search import tune


def _progress(max_minutes: float):
    t0 = time.monotonic()
    tty = sys.stderr.isatty()
    seen = {"built": 0, "planned": 0}

    def bar() -> str:
        used = (time.monotonic() - t0) / 60
        filled = int(20 * min(1.0, used / max_minutes))
        return f"[{'#' * filled}{'.' * (20 - filled)}] {used:4.1f}/{max_minutes:g} min"

    def report(event, **kw):
        if event == "plan":
            seen["planned"] = kw["bases"]
            for why in kw["skipped"]:
                click.echo(f"tune: not searched: {why}", err=True)
            return
        if event == "built":
            seen["built"] += 1
            r = kw["rec"]
            what = (
                f"mean {r['mean_cosine']:.4f} worst {r['worst_cosine']:.4f} {r['size_bytes'] / 1e6:.1f} MB" if r["status"] == "built" else r["status"]
            )
            again = " (from the interrupted search)" if kw.get("cached") else ""
            click.echo(f"{bar()} candidate {seen['built']}: {r['label']}: {what}{again}", err=True)
        elif event == "measuring":
            click.echo(f"{bar()} measuring {kw['n']} on the target, interleaved ({kw['round'].split(':')[0]})", err=True)
        if tty:
            sys.stderr.flush()

    return report


@click.command("tune")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Where the winner is published (an artifact with tune.json/md/html).",
)
@click_options(TuneOptions)
@click.option("--force", is_flag=True, help="Replace OUT and any earlier search state.")
@json_option
def command(artifact, out, force, as_json, **settings):
    """Find the fastest variant of ARTIFACT that meets a budget, measuring every candidate on the
    target (this host, --host, or a recipe target). Resumable: Ctrl-C, then --resume."""
    opts = from_cli(TuneOptions, settings)
    doc = tune(artifact, out, opts, force=force, progress=None if as_json else _progress(opts.max_minutes))
    if as_json:
        emit_json(doc)
        return
    w = doc["winner"]
    lat = w["measured"]["latency_ms"]
    sess = ", ".join(f"{k}={v}" for k, v in w["session"].items()) or "profile defaults"
    click.echo(f"winner: {w['label']} ({sess}) -> {out}")
    click.echo(f"  p50 {lat['p50']:.2f} ms (cv {lat['cv']:.1%}){'' if w['stable'] else ' UNSTABLE'}; {w['why']}")
    click.echo(f"  report: {out / 'tune.md'}")
