from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.options import click_options, from_cli
from edgedeploy.export import ExportOptions, export


@click.command("export")
@click.argument("source", required=False)
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Artifact directory to create.")
@click_options(ExportOptions)
@click.option("--force", is_flag=True, help="Replace an existing artifact at OUT.")
@json_option
def command(source, out, force, as_json, **settings):
    """Export SOURCE to an ONNX artifact and validate it against PyTorch.

    SOURCE is a local Hugging Face model directory, the embedded name 'minilm-l6',
    or a TorchScript .pt file; or use --factory for any torch.nn.Module.
    """
    art = export(source, out, options=from_cli(ExportOptions, settings), force=force)
    m = art.manifest
    v = m.validation
    if as_json:
        validation = v.model_dump(include={"passed", "max_abs_diff", "atol", "rtol"})
        emit_json({"artifact": str(art.path), "digest": art.digest, "validation": validation, "size_bytes": m.size_bytes})
    else:
        click.echo(f"exported {m.source.name} -> {art.path}")
        click.echo(
            f"  validation passed: max_abs_diff {v.max_abs_diff:.3g} (atol {v.atol:g}), "
            f"{len(v.cases)} cases, exporter {m.export.exporter}, size {m.size_bytes / 1e6:.1f} MB"
        )
