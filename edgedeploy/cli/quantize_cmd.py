from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, fmt_bytes, json_option
from edgedeploy.core.options import LateOptionsCommand, click_options, from_cli
from edgedeploy.quantize.api import quantize
from edgedeploy.quantize.options import QuantizeOptions, method_click_params


@click.command("quantize", cls=LateOptionsCommand, late_params=method_click_params)
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Artifact directory to create (never the parent or inside it)."
)
@click_options(QuantizeOptions, exclude=("method", "settings"))
@click.option("--force", is_flag=True, help="Replace an existing artifact at OUT.")
@json_option
def command(artifact, out, force, as_json, **settings):
    """Quantize ARTIFACT with ONNX Runtime into a new artifact (the parent is never modified)."""
    opts = from_cli(QuantizeOptions, settings)
    method = opts.method
    art = quantize(artifact, out, options=opts, force=force)
    q, f = art.manifest.quantization, art.manifest.fidelity
    if as_json:
        emit_json({"artifact": str(art.path), "quantization": q, "fidelity": f})
        return
    click.echo(f"{method} -> {art.path}: {fmt_bytes(q.model_bytes)} ({_size_change(q.compression_ratio)} than {fmt_bytes(q.parent_model_bytes)})")
    line = f"  fidelity on {f.samples} samples: mean cosine {f.mean_cosine:.4f}, worst {f.worst_cosine:.4f}, max abs diff {f.max_abs_diff:.3g}"
    if f.top1_agreement is not None:
        line += f", top-1 agreement {f.top1_agreement:.1%}"
    click.echo(line)
    search = q.accuracy_search
    if search and "accuracy" in search["reached"]:
        click.echo(
            f"  task accuracy {search['reached']['accuracy']:.4f} vs parent {search['budget']['parent_accuracy']:.4f} "
            f"(drop {search['reached']['accuracy_drop']:.4f}, budget {search['budget']['max_accuracy_drop']})"
        )
    if q.nodes_kept_float:
        click.echo(f"  kept in float: {len(q.nodes_kept_float)} node(s)")


def _size_change(ratio: float) -> str:
    """'3.80x smaller', or 'N.NNx larger' where quantizing a tiny model added more than it saved."""
    return f"{ratio:.2f}x smaller" if ratio >= 1 else f"{1 / ratio:.2f}x larger"
