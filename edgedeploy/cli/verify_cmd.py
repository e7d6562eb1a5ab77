from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.artifact import Artifact
from edgedeploy.core.errors import BadInput


@click.command("verify")
@click.argument("artifact", type=click.Path(path_type=Path))
@json_option
def command(artifact, as_json):
    """Check ARTIFACT against its manifest: exactly the listed files, each intact, no links, a
    non-empty model whose external data is listed (exit 2 on any problem)."""
    art = Artifact.load(artifact, verify=False)
    problems = art.verify()
    if as_json:
        emit_json({"artifact": str(art.path), "ok": not problems, "problems": problems, "files": len(art.manifest.files)})
    if problems:
        raise BadInput(f"{art.path}: {len(problems)} file(s) do not match the manifest: {'; '.join(problems)}")
    if not as_json:
        click.echo(f"{art.path}: OK, {len(art.manifest.files)} files match the manifest")
