import sys
from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option, table


@click.command("eval")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labeled TSV/CSV/JSONL.")
@click.option("--reference", type=click.Path(path_type=Path), help="Also measure fidelity against this artifact (e.g. the float parent).")
@click.option("--text-column", default="text", show_default=True)
@click.option("--text-pair-column", help="Second text column for pair tasks (MNLI/QQP style).")
@click.option("--label-column", default="label", show_default=True)
@click.option("--no-labels", is_flag=True, help="Fidelity only (for models that are not classifiers).")
@click.option("--limit", type=int, help="Evaluate the first N rows.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the result JSON here.")
@json_option
def command(artifact, data, reference, text_column, text_pair_column, label_column, no_labels, limit, batch_size, output, as_json):
    """Task accuracy of ARTIFACT on labeled data (accuracy, macro-F1, per class) and its
    fidelity against --reference."""
    from edgedeploy.core.atomic import write_json_atomic
    from edgedeploy.core.errors import BadInput
    from edgedeploy.quality.evaluate import evaluate, top_confusions

    if no_labels and not reference:
        raise BadInput("--no-labels leaves nothing to measure without --reference")
    tty = sys.stderr.isatty()

    def progress(n):
        if tty:
            click.echo(f"\revaluated {n} rows", err=True, nl=False)

    res = evaluate(artifact, data, reference=reference, text_column=text_column, label_column=None if no_labels else label_column,
                   pair_column=text_pair_column, limit=limit, batch=batch_size, progress=progress)
    if tty:
        click.echo("", err=True)
    if output:
        write_json_atomic(output, res)
    if as_json:
        emit_json(res)
        return
    click.echo(f"{res['artifact']} on {res['data']}: {res['samples']} rows")
    if "task" in res:
        t = res["task"]
        click.echo(f"  accuracy {t['accuracy']:.4f}, macro-F1 {t['macro_f1']:.4f}")
        rows = [[name, c["support"], c["predicted"], c["correct"], f"{c['f1']:.3f}"] for name, c in sorted(t["per_class"].items(), key=lambda kv: -kv[1]["support"])[:20]]
        click.echo(table(rows, ["class", "support", "predicted", "correct", "f1"]))
        if len(t["per_class"]) > 20:
            click.echo(f"  ({len(t['per_class']) - 20} more classes in the JSON); most missed: {top_confusions(t['per_class'])}")
    if "fidelity" in res:
        f = res["fidelity"]
        line = f"  vs {f['reference']}: mean cosine {f['mean_cosine']:.4f}, min {f['min_cosine']:.4f}, max abs diff {f['max_abs_diff']:.3g}"
        if "top1_agreement" in f:
            line += f", top-1 agreement {f['top1_agreement']:.1%}"
        click.echo(line)
