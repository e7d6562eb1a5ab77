from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.adopt import adopt


@click.command("adopt")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Artifact directory to create.")
@click.option("--force", is_flag=True, help="Replace OUT if it is an artifact.")
@json_option
def command(model, out, force, as_json):
    """Make an artifact of an ONNX model edgedeploy did not export: a .onnx file (external data
    beside it) or a directory with model.onnx, as optimum, onnxruntime or Olive write it. Its
    tokenizer and config files come along. quantize, bench, inspect, estimate and eval take such
    a model directly too; adopt makes the artifact explicit."""
    art = adopt(model, out, force=force)
    if as_json:
        emit_json({"artifact": str(art.path), "digest": art.digest, "files": sorted(art.manifest.files)})
        return
    n = len(art.manifest.files)
    click.echo(f"{art.path}: adopted {art.manifest.source.path} ({n} file{'s' if n != 1 else ''}, validation not run: no PyTorch source)")
