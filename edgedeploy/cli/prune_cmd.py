from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.compress import prune
from edgedeploy.compress.options import PruneOptions
from edgedeploy.core.options import click_options, from_cli


@click.command("prune")
@click.argument("source")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory to create.")
@click_options(PruneOptions)
@click.option("--force", is_flag=True, help="Replace an existing pruned checkpoint at OUT.")
@json_option
def command(source, out, force, as_json, **settings):
    """Prune attention heads, feed-forward neurons or layers of SOURCE into a smaller checkpoint.

    SOURCE takes the forms 'edgedeploy export' accepts (a Hugging Face directory, minilm-l6,
    reference:sst2). The output is a Hugging Face directory that exports without special flags.
    """

    opts = from_cli(PruneOptions, settings)
    rec = prune(source, out, opts, force=force)
    if as_json:
        emit_json({"output": str(out), **rec})
        return
    p, r = rec["parameters"], rec["removed"]
    click.echo(f"pruned {source} -> {out}")
    click.echo(
        f"  heads removed {r['heads_total']}/{r['heads_before']}, feed-forward width {r['ffn_width'][0]} -> {r['ffn_width'][1]}, "
        f"layers {r['layers_before']} -> {len(r['layers_kept']) if r['layers_kept'] else r['layers_before']}"
    )
    click.echo(f"  parameters {p['before'] / 1e6:.2f} M -> {p['after'] / 1e6:.2f} M ({p['reduction']:.1%} fewer)")
    a = rec["accuracy"]
    if a:
        steps_txt = ", ".join(
            f"round {x['round']}: {x['accuracy_after_prune']:.4f} pruned"
            + (f" -> {x['accuracy_after_recovery']:.4f} recovered" if "accuracy_after_recovery" in x else "")
            for x in rec["rounds"]
        )
        click.echo(f"  accuracy {a['before']:.4f} before; {steps_txt}; {a['after']:.4f} after ({a['eval_rows']} rows, PyTorch)")
