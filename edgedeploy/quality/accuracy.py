"""Task accuracy of a classifier artifact on labeled text (TSV/CSV/JSONL): string or
integer labels, mapped through the artifact's config.json label2id when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.core.bounded import read_json_bounded
from edgedeploy.core.errors import BadInput
from edgedeploy.data.labels import config_label2id, to_ids
from edgedeploy.data.samples import SampleSource
from edgedeploy.runtimes.session import Runner


def label_ids(labels: list, artifact, data=None, lines: list[int] | None = None) -> np.ndarray:
    """Class ids of ``labels`` through the artifact's config.json (``label2id``, ``num_labels``)."""
    cfg_path = artifact.path / "config.json"
    cfg = read_json_bounded(cfg_path, "config.json") if cfg_path.is_file() else {}
    n = len(cfg["id2label"]) if isinstance(cfg.get("id2label"), dict) else None
    return to_ids(labels, config_label2id(cfg), n, str(data) if data else str(artifact.path), lines)


def labeled_eval(artifact, data: Path, text_column: str, label_column: str, limit: int, offset: int = 0):
    src = SampleSource(artifact, data, text_column, limit=limit, label_column=label_column, offset=offset)
    batches = list(src)
    return batches, label_ids(src.labels, artifact, data, src.label_lines)


def accuracy(model_path, batches: list[dict], labels: np.ndarray) -> float:
    model = Runner(model_path, [0])
    preds = []
    for feeds in batches:
        logits = model.first(feeds)
        if logits.ndim != 2:
            raise BadInput(
                f"{model_path}: task accuracy needs a classifier with 2-D logits; this output has shape {list(logits.shape)} (use --min-mean-cosine)"
            )
        preds.append(logits.argmax(1))
    p = np.concatenate(preds)
    return float((p == labels[: len(p)]).mean())
