"""The winner of a ``tune`` search, measured again on rows the search never saw.

``tune`` splits --data (``data/split.py``): every candidate's fidelity, and task accuracy, is
measured on the selection rows, and the winner's on the held-out rows too. The held-out figures
are the ones of record (manifest, tune.json, report); a budget the winner meets on the selection
rows only is a failed budget."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.core.artifact import Artifact
from edgedeploy.core.errors import ValidationFailed
from edgedeploy.data.samples import SampleSource
from edgedeploy.quality.accuracy import accuracy, labeled_eval
from edgedeploy.quality.fidelity import compare_models, worst_cosine
from edgedeploy.quality.seq2seq_fidelity import seq2seq_eval

ALL_ROWS = 1 << 30  # the held-out file holds exactly the held-out rows


def measure(parent: Artifact, winner: Artifact, held: Path, opts) -> dict:
    """The winner against the parent on the held-out rows: fidelity (by generation for an
    encoder-decoder) and, with an accuracy budget, task accuracy and its drop."""
    if parent.is_seq2seq:
        fid = seq2seq_eval(winner, parent, held, opts.text_column, ALL_ROWS)["fidelity"]
    else:
        fid = compare_models(winner.model_path, parent.model_path, SampleSource(parent, held, opts.text_column, limit=ALL_ROWS))
    out = {"samples": fid["samples"], "mean_cosine": fid["mean_cosine"], "worst_cosine": worst_cosine(fid), "fidelity": fid}
    if opts.max_accuracy_drop is not None:
        batches, labels = labeled_eval(parent, held, opts.text_column, opts.label_column, ALL_ROWS)
        out["accuracy"] = accuracy(winner.model_path, batches, labels)
        out["parent_accuracy"] = accuracy(parent.model_path, batches, labels)
        out["accuracy_drop"] = out["parent_accuracy"] - out["accuracy"]
    return out


def check(leader: dict, held: dict, misses, split: dict) -> None:
    """Exit 1 when the winner misses the budget on the held-out rows (``misses`` is the search's)."""
    missed = misses({**leader, **{k: held[k] for k in ("mean_cosine", "worst_cosine", "accuracy_drop") if k in held}})
    if missed:
        sel, out = split["selection_rows"], split["held_out_rows"]
        raise ValidationFailed(
            f"the winner {leader['label']} meets the budget on the selection rows {sel[0]}-{sel[1] - 1} but not on the held-out rows "
            f"{out[0]}-{out[1] - 1} of {split['file']}: {'; '.join(missed)}; nothing was published (more --eval-samples, or a looser budget)"
        )
