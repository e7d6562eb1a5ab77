import sys
from pathlib import Path

import click

from edgedeploy.cli.common import check_result_file, emit_json, json_option, table
from edgedeploy.core.adopt import open_model
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput
from edgedeploy.core.options import click_options, from_cli
from edgedeploy.quality.evaluate import EvalOptions, evaluate, top_confusions
from edgedeploy.quality.fidelity import worst_cosine
from edgedeploy.quality.perplexity import perplexity


@click.command("eval")
@click.argument("artifact", type=click.Path(path_type=Path))
@click_options(EvalOptions)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the result JSON here.")
@json_option
def command(artifact, output, as_json, **settings):
    """Task accuracy of ARTIFACT on labeled data (accuracy, macro-F1, per class) and its
    fidelity against --reference."""

    o = from_cli(EvalOptions, settings)
    check_result_file(output, (artifact, o.reference))
    res = _perplexity(artifact, o) if o.metric == "perplexity" else _task(artifact, o)
    if output:
        write_json_atomic(output, res)
    if as_json:
        emit_json(res)
        return
    if o.metric == "perplexity":
        line = f"{res['artifact']} on {res['data']}: perplexity {res['perplexity']:.3f} over {res['scored_tokens']} tokens (window {res['window']}, stride {res['stride']})"
        if "reference" in res:
            line += f"; greedy next-token agreement with {res['reference']['artifact']}: {res['reference']['greedy_next_token_agreement']:.1%}"
        click.echo(line)
        return
    click.echo(f"{res['artifact']} on {res['data']}: {res['samples']} rows")
    if "task" in res:
        t = res["task"]
        click.echo(f"  accuracy {t['accuracy']:.4f}, macro-F1 {t['macro_f1']:.4f}")
        rows = [
            [name, c["support"], c["predicted"], c["correct"], f"{c['f1']:.3f}"]
            for name, c in sorted(t["per_class"].items(), key=lambda kv: -kv[1]["support"])[:20]
        ]
        click.echo(table(rows, ["class", "support", "predicted", "correct", "f1"]))
        if len(t["per_class"]) > 20:
            click.echo(f"  ({len(t['per_class']) - 20} more classes in the JSON); most missed: {top_confusions(t['per_class'])}")
    if "fidelity" in res:
        f = res["fidelity"]
        line = f"  vs {f['reference']}: mean cosine {f['mean_cosine']:.4f}, worst {worst_cosine(f):.4f}, max abs diff {f['max_abs_diff']:.3g}"
        if "top1_agreement" in f:
            line += f", top-1 agreement {f['top1_agreement']:.1%}"
        click.echo(line)


def _perplexity(artifact, o: EvalOptions) -> dict:
    ref = open_model(o.reference) if o.reference else None
    return perplexity(open_model(artifact), o.eval_data, reference=ref, text_column=o.text_column, limit=o.max_rows, window=o.window, stride=o.stride)


def _task(artifact, o: EvalOptions) -> dict:
    if o.window or o.stride:
        raise BadInput("--window and --stride apply to --metric perplexity")
    if o.no_labels and not o.reference:
        raise BadInput("--no-labels leaves nothing to measure without --reference")
    tty = sys.stderr.isatty()

    def progress(n):
        if tty:
            click.echo(f"\revaluated {n} rows", err=True, nl=False)

    res = evaluate(
        artifact,
        o.eval_data,
        reference=o.reference,
        text_column=o.text_column,
        label_column=None if o.no_labels else o.label_column,
        text_pair_column=o.text_pair_column,
        limit=o.max_rows,
        batch=o.batch_size,
        progress=progress,
    )
    if tty:
        click.echo("", err=True)
    return res
