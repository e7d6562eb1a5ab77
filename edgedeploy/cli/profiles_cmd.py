import click

from edgedeploy.cli.common import emit_json, json_option, table
from edgedeploy.device.profiles import available, load


@click.group("profiles")
def command():
    """List and show device profiles (bundled, or user ones via EDGEDEPLOY_PROFILES)."""


@command.command("list")
@json_option
def list_cmd(as_json):
    """List every profile that loads and validates."""
    rows, docs = [], []
    for name in sorted(available()):
        p = load(name)
        docs.append(p)
        rows.append(
            [
                name,
                p["target"]["arch"],
                p["target"]["cpu"],
                p["target"]["cores"],
                ",".join(p["run"]["providers"]).replace("ExecutionProvider", ""),
                p["quantization"]["preferred"],
                p["_path"],
            ]
        )
    if as_json:
        emit_json(docs)
    else:
        click.echo(table(rows, ["name", "arch", "cpu", "cores", "providers", "quantize", "file"]))


@command.command("show")
@click.argument("name")
@json_option
def show_cmd(name, as_json):
    """Show one profile (NAME or a path to a .json profile)."""
    p = load(name)
    if as_json:
        emit_json(p)
        return
    click.echo(f"{p['name']}: {p['description']}  ({p['_path']})")
    for section in ("target", "run", "quantization", "peaks"):
        click.echo(f"[{section}]")
        for k, v in p[section].items():
            click.echo(f"  {k}: {v}")
