"""Shared CLI helpers: --json output, one-line errors, the exit-code contract."""

from __future__ import annotations

import json
import sys

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


def training_options(f):
    """The data and training options prune and distill share."""
    for opt in reversed((
        click.option("--text-column", default="text", show_default=True),
        click.option("--label-column", default="label", show_default=True),
        click.option("--batch-size", default=32, show_default=True),
        click.option("--max-length", default=64, show_default=True, help="Token limit when training."),
        click.option("--seed", default=0, show_default=True, help="Data order, dropout and subsets; the same seed gives the same weights."),
    )):
        f = opt(f)
    return f


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def table(rows: list[list], headers: list[str]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def fmt_ms(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def fmt_bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def warn(msg: str) -> None:
    click.echo(f"edgedeploy: warning: {msg}", err=True)


def fail_line(msg: str) -> None:
    click.echo(f"edgedeploy: error: {msg}", err=True)
    sys.stderr.flush()
