from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option, training_options


@click.command("distill")
@click.option("--teacher", required=True, help="Teacher classifier: a Hugging Face directory or reference:sst2.")
@click.option("--student", help="Student model directory (must share the teacher's tokenizer).")
@click.option("--student-layers", help="Or build the student from the teacher's layers: a count (2) or indices (0,2,4).")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Training text (TSV/CSV/JSONL); labels used when --alpha > 0.")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory to create.")
@click.option("--eval", "eval_file", type=click.Path(path_type=Path), help="Labeled text for teacher and student accuracy (e.g. dev.tsv).")
@click.option("--temperature", default=2.0, show_default=True, help="Softmax temperature of the soft (teacher) loss.")
@click.option("--alpha", default=0.5, show_default=True, help="Weight of the hard-label loss; 1-alpha weighs the soft loss.")
@click.option("--hidden-weight", default=0.0, show_default=True, help="Weight of the hidden-state MSE loss (same hidden size).")
@click.option("--attention-weight", default=0.0, show_default=True, help="Weight of the MiniLM-style Q/K/V attention-relation loss.")
@click.option("--relation-heads", type=int, help="Relation heads for the attention loss (default: the teacher's head count).")
@click.option("--epochs", default=1.0, show_default=True)
@click.option("--limit", type=int, help="Use a seeded random subset of this many --data rows.")
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--checkpoint-every", default=50, show_default=True, help="Steps between checkpoints in OUT.partial/ (0: none).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in OUT.partial/.")
@click.option("--force", is_flag=True, help="Replace an existing checkpoint at OUT.")
@training_options
@json_option
def command(teacher, student, student_layers, data, out, eval_file, text_column, label_column, temperature, alpha, hidden_weight,
            attention_weight, relation_heads, epochs, limit, lr, batch_size, max_length, seed, checkpoint_every, resume, force, as_json):
    """Distill a teacher classifier into a smaller student (logits, hidden states, attention relations)."""
    from edgedeploy.compress import DistillOptions, distill

    opts = DistillOptions(data=str(data), student=student, student_layers=student_layers, eval=str(eval_file) if eval_file else None,
                          text_column=text_column, label_column=label_column, temperature=temperature, alpha=alpha,
                          hidden_weight=hidden_weight, attention_weight=attention_weight, relation_heads=relation_heads, epochs=epochs,
                          limit=limit, lr=lr, batch_size=batch_size, max_length=max_length, seed=seed, checkpoint_every=checkpoint_every)
    rec = distill(teacher, out, opts, force=force, resume=resume)
    if as_json:
        emit_json({"output": str(out), **rec})
        return
    p, t = rec["parameters"], rec["training"]
    click.echo(f"distilled {teacher} -> {out}")
    click.echo(f"  parameters {p['teacher'] / 1e6:.2f} M -> {p['student'] / 1e6:.2f} M ({p['reduction']:.1%} fewer)")
    click.echo(f"  distillation loss {rec['loss_before']['total']:.4f} -> {rec['loss_after']['total']:.4f} on a held probe; "
               f"{t['steps']} steps on {t['rows']} rows in {t['seconds']:.0f} s")
    a = rec["accuracy"]
    if a:
        click.echo(f"  accuracy: teacher {a['teacher']:.4f}, student {a['student_before']:.4f} before -> {a['student_after']:.4f} after "
                   f"({a['eval_rows']} rows, PyTorch)")
