from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option


@click.command("export")
@click.argument("source", required=False)
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Artifact directory to create.")
@click.option("--task", help="Hugging Face task (auto-detected from config.json when omitted).")
@click.option("--factory", help="package.module:callable returning a torch.nn.Module.")
@click.option("--weights", type=click.Path(path_type=Path), help="Weights for --factory (.safetensors preferred; .pt loads with weights_only=True).")
@click.option("--input", "input_specs", multiple=True, help="Input spec name:dtype:dims, dims may be symbolic: input:float32:batch,3,224,224.")
@click.option("--opset", type=int, help="ONNX opset (exporter default when omitted).")
@click.option("--optimize", is_flag=True, help="Apply onnxruntime.transformers graph fusions (transformer families).")
@click.option("--atol", type=float, help="Absolute tolerance for validation (family default).")
@click.option("--rtol", type=float, help="Relative tolerance for validation (family default).")
@click.option("--sample-data", type=click.Path(path_type=Path), help="Validate on real samples: TSV/CSV/JSONL text or .npz of inputs.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--trust-pickle", is_flag=True, help="Allow loading arbitrary pickled objects (only for files you trust).")
@click.option("--force", is_flag=True, help="Replace an existing artifact at OUT.")
@json_option
def command(source, out, task, factory, weights, input_specs, opset, optimize, atol, rtol, sample_data, text_column, trust_pickle, force, as_json):
    """Export SOURCE to an ONNX artifact and validate it against PyTorch.

    SOURCE is a local Hugging Face model directory, the embedded name 'minilm-l6',
    or a TorchScript .pt file; or use --factory for any torch.nn.Module.
    """
    from edgedeploy.export import export

    art = export(source, out, task=task, opset=opset, optimize=optimize, factory=factory, weights=weights,
                 input_specs=input_specs, trust_pickle=trust_pickle, atol=atol, rtol=rtol,
                 sample_data=sample_data, text_column=text_column, force=force)
    v = art.manifest["validation"]
    if as_json:
        emit_json({"artifact": str(art.path), "digest": art.digest, "validation": {k: v[k] for k in ("passed", "max_abs_diff", "atol", "rtol")}, "size_bytes": art.manifest["size_bytes"]})
    else:
        click.echo(f"exported {art.manifest['source']['name']} -> {art.path}")
        click.echo(f"  validation passed: max_abs_diff {v['max_abs_diff']:.3g} (atol {v['atol']:g}), "
                   f"{len(v['cases'])} cases, exporter {art.manifest['export']['exporter']}, size {art.manifest['size_bytes'] / 1e6:.1f} MB")
