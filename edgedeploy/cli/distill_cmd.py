from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.compress import distill
from edgedeploy.compress.options import DistillOptions
from edgedeploy.core.options import click_options, from_cli


@click.command("distill")
@click.option("--teacher", required=True, help="Teacher classifier: a Hugging Face directory or reference:sst2.")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory to create.")
@click_options(DistillOptions)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in OUT.partial/.")
@click.option("--force", is_flag=True, help="Replace an existing checkpoint at OUT.")
@json_option
def command(teacher, out, resume, force, as_json, **settings):
    """Distill a teacher classifier into a smaller student (logits, hidden states, attention relations)."""
    opts = from_cli(DistillOptions, settings)
    rec = distill(teacher, out, opts, force=force, resume=resume)
    if as_json:
        emit_json({"output": str(out), **rec})
        return
    p, t = rec["parameters"], rec["training"]
    click.echo(f"distilled {teacher} -> {out}")
    click.echo(f"  parameters {p['before'] / 1e6:.2f} M -> {p['after'] / 1e6:.2f} M ({p['reduction']:.1%} fewer)")
    click.echo(
        f"  distillation loss {rec['loss_before']['total']:.4f} -> {rec['loss_after']['total']:.4f} on a held probe; "
        f"{t['steps']} steps on {t['rows']} rows in {t['seconds']:.0f} s"
    )
    a = rec["accuracy"]
    if a:
        click.echo(
            f"  accuracy: teacher {a['before']:.4f}, student {a['initial']:.4f} before -> {a['after']:.4f} after ({a['eval_rows']} rows, PyTorch)"
        )
