"""``edgedeploy eval``: task accuracy (accuracy, macro-F1, per-class counts) on labeled text
and fidelity against a reference artifact, streamed batch by batch in bounded memory."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgedeploy.core.adopt import open_model
from edgedeploy.core.bounded import read_json_bounded
from edgedeploy.core.errors import BadInput
from edgedeploy.core.options import Options
from edgedeploy.data.samples import SampleSource
from edgedeploy.quality.accuracy import label_ids
from edgedeploy.quality.fidelity import Collector
from edgedeploy.quality.seq2seq_fidelity import seq2seq_eval
from edgedeploy.runtimes.session import Runner

log = logging.getLogger("edgedeploy")


class EvalOptions(Options):
    """Every setting of ``edgedeploy eval``."""

    eval_data: Path = Field(description="Labeled TSV/CSV/JSONL.", json_schema_extra={"flag": "data"})
    reference: Path | None = Field(None, description="Also measure fidelity against this artifact (e.g. the float parent).")
    text_column: str = Field("text", min_length=1, description="Text column of the data file.")
    text_pair_column: str | None = Field(None, description="Second text column for pair tasks (MNLI/QQP style).")
    label_column: str = Field("label", min_length=1, description="Label column of the data file.")
    no_labels: bool = Field(False, description="Fidelity only (for models that are not classifiers).")
    max_rows: int | None = Field(None, ge=1, description="Evaluate the first N rows of --data.")
    batch_size: int = Field(32, ge=1, le=4096, description="Rows per batch.")
    metric: Literal["task", "perplexity"] = Field(
        "task", description="task: accuracy on labels (and fidelity); perplexity: a decoder's token-weighted perplexity on the text."
    )
    window: int | None = Field(
        None, ge=2, le=65536, description="Perplexity: tokens per sliding window (default: the model's positions, at most 256)."
    )
    stride: int | None = Field(None, ge=1, le=65536, description="Perplexity: tokens the window advances (default: half the window).")


def classification_metrics(labels: np.ndarray, preds: np.ndarray, names: dict[int, str] | None = None) -> dict:
    """Accuracy, macro-F1 over every class seen in labels or predictions, per-class counts."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    classes = sorted(set(labels.tolist()) | set(preds.tolist()))
    per_class, f1s = {}, []
    for c in classes:
        tp = int(((preds == c) & (labels == c)).sum())
        fp = int(((preds == c) & (labels != c)).sum())
        fn = int(((preds != c) & (labels == c)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        f1s.append(f1)
        per_class[(names or {}).get(c, str(c))] = {"support": tp + fn, "predicted": tp + fp, "correct": tp, "precision": p, "recall": r, "f1": f1}
    return {
        "samples": int(labels.size),
        "accuracy": float((labels == preds).mean()) if labels.size else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "per_class": per_class,
    }


def evaluate(
    artifact,
    data: Path,
    *,
    reference=None,
    text_column: str = "text",
    label_column: str | None = "label",
    text_pair_column: str | None = None,
    limit: int | None = None,
    batch: int = 32,
    progress=None,
) -> dict:

    art = open_model(artifact)
    ref = open_model(reference) if reference else None
    if art.is_seq2seq:
        return seq2seq_eval(art, ref, data, text_column, limit)
    art.require_single_graph("eval")
    src = SampleSource(art, data, text_column, limit=limit or 10**12, batch=batch, label_column=label_column, pair_column=text_pair_column)
    model = Runner(art.model_path, [0])
    ref_model = Runner(ref.model_path, [0]) if ref else None
    out_name = model.names[0]
    col = Collector() if ref else None
    preds, seen = [], 0
    for feeds in src:
        got = model.first(feeds)
        if label_column:
            if got.ndim != 2:
                raise BadInput(
                    f"{art.path}: task accuracy needs a classifier (2-D logits); output {out_name!r} has shape {list(got.shape)}; "
                    "drop --label-column to measure fidelity only"
                )
            preds.append(got.argmax(1))
        if ref_model is not None:
            col.add(got, ref_model.first(feeds), feeds.get("attention_mask"))
        seen += len(next(iter(feeds.values())))
        if progress:
            progress(seen)
    if seen == 0:
        raise BadInput(f"{data}: no rows to evaluate")
    result = {"artifact": str(art.path), "artifact_digest": art.digest, "data": str(data), "samples": seen, "measured": "measured"}
    if label_column:
        cfg = art.path / "config.json"
        raw = (read_json_bounded(cfg, "config.json").get("id2label") or {}) if cfg.is_file() else {}
        try:
            id2label = {int(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        except ValueError:
            raise BadInput(f"{cfg}: id2label keys must be class ids (integers)") from None
        result["task"] = classification_metrics(label_ids(src.labels, art, data, src.label_lines), np.concatenate(preds), id2label)
    if ref is not None:
        fid = col.result(out_name)
        fid["reference"] = str(ref.path)
        result["fidelity"] = fid
    return result


def top_confusions(per_class: dict, n: int = 5) -> list[tuple[str, int]]:
    """Classes with the most misses, for the human summary."""
    misses = Counter({name: c["support"] - c["correct"] for name, c in per_class.items()})
    return misses.most_common(n)
