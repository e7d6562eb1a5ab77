"""Shared CLI helpers: --json output, one-line errors, the exit-code contract."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from pydantic import BaseModel

from edgedeploy.core.atomic import check_output_file, refuse_inside
from edgedeploy.core.errors import BadInput

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


def emit_json(obj) -> None:
    """``obj`` as JSON on stdout; typed parts (the manifest's sections) as their JSON form."""
    click.echo(json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(obj):
    return obj.model_dump(mode="json", exclude_none=True) if isinstance(obj, BaseModel) else str(obj)


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
    """One ``edgedeploy: error:`` line per problem (a bad recipe reports each of its problems)."""
    for line in str(msg).splitlines() or [""]:
        click.echo(f"edgedeploy: error: {line}", err=True)
    sys.stderr.flush()


def check_result_file(output, inputs=(), flag: str = "-o") -> None:
    """Before any work: a results path must not be a directory nor lie inside an input artifact."""
    if output is None:
        return
    if Path(output).is_dir():
        raise BadInput(f"{flag} {output}: is a directory; give a file path for the results JSON")
    check_output_file(output, flag)
    refuse_inside_inputs(output, inputs, flag)


def refuse_inside_inputs(path, inputs, flag: str) -> None:
    """``path`` (an output of ``flag``) may not lie inside any input directory: writing there
    would change what an artifact's manifest lists."""
    if path is None:
        return
    for art in inputs:
        if art is not None and Path(art).is_dir():
            refuse_inside(path, art, f"the artifact {art} ({flag})")
