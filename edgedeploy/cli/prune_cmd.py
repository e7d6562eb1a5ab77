from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option, training_options


@click.command("prune")
@click.argument("source")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory to create.")
@click.option("--heads", help="Attention heads to remove: a fraction of all heads (0.2), a count (14) or LAYER:HEAD,..;.. (0:1,2;3:0).")
@click.option("--ffn", type=float, help="Fraction of feed-forward neurons to remove from every layer (0.25).")
@click.option("--keep-layers", help="Keep only these layers, e.g. 0,2,4 (applied first).")
@click.option("--importance", type=click.Choice(["gradient", "magnitude"]), help="Ranking: gradient (needs --data; the default with it) or magnitude.")
@click.option("--data", type=click.Path(path_type=Path), help="Labeled training text (TSV/CSV/JSONL): gradient importance and recovery.")
@click.option("--eval", "eval_file", type=click.Path(path_type=Path), help="Labeled text to report accuracy before and after (e.g. dev.tsv).")
@click.option("--importance-samples", default=512, show_default=True, help="Rows of --data used to rank heads and neurons.")
@click.option("--steps", default=1, show_default=True, help="Gradual schedule: prune in this many rounds, recovering after each.")
@click.option("--recover-epochs", default=0.0, show_default=True, help="Recovery fine-tuning after each round (epochs over --data; fractions allowed).")
@click.option("--limit", type=int, help="Use a seeded random subset of this many --data rows for recovery.")
@click.option("--lr", default=3e-5, show_default=True, help="Recovery learning rate (lower than fine-tuning).")
@click.option("--allow-empty-layer", is_flag=True, help="Allow removing every head of a layer.")
@click.option("--force", is_flag=True, help="Replace an existing pruned checkpoint at OUT.")
@training_options
@json_option
def command(source, out, heads, ffn, keep_layers, importance, data, eval_file, text_column, label_column, importance_samples, steps,
            recover_epochs, limit, lr, batch_size, max_length, seed, allow_empty_layer, force, as_json):
    """Prune attention heads, feed-forward neurons or layers of SOURCE into a smaller checkpoint.

    SOURCE takes the forms 'edgedeploy export' accepts (a Hugging Face directory, minilm-l6,
    reference:sst2). The output is a Hugging Face directory that exports without special flags.
    """
    from edgedeploy.compress import PruneOptions, prune

    opts = PruneOptions(heads=heads, ffn=ffn, keep_layers=keep_layers, importance=importance, data=str(data) if data else None,
                        eval=str(eval_file) if eval_file else None, text_column=text_column, label_column=label_column,
                        importance_samples=importance_samples, steps=steps, recover_epochs=recover_epochs, limit=limit, lr=lr,
                        batch_size=batch_size, max_length=max_length, seed=seed, allow_empty_layer=allow_empty_layer)
    rec = prune(source, out, opts, force=force)
    if as_json:
        emit_json({"output": str(out), **rec})
        return
    p, r = rec["parameters"], rec["removed"]
    click.echo(f"pruned {source} -> {out}")
    click.echo(f"  heads removed {r['heads_total']}/{r['heads_before']}, feed-forward width {r['ffn_width'][0]} -> {r['ffn_width'][1]}, "
               f"layers {r['layers_before']} -> {len(r['layers_kept']) if r['layers_kept'] else r['layers_before']}")
    click.echo(f"  parameters {p['before'] / 1e6:.2f} M -> {p['after'] / 1e6:.2f} M ({p['reduction']:.1%} fewer)")
    a = rec["accuracy"]
    if a:
        steps_txt = ", ".join(f"round {x['round']}: {x['accuracy_after_prune']:.4f} pruned"
                              + (f" -> {x['accuracy_after_recovery']:.4f} recovered" if "accuracy_after_recovery" in x else "") for x in rec["rounds"])
        click.echo(f"  accuracy {a['before']:.4f} before; {steps_txt}; {a['after']:.4f} after ({a['eval_rows']} rows, PyTorch)")
