"""Task accuracy of a classifier artifact on labeled text (TSV/CSV/JSONL): string or
integer labels, mapped through the artifact's config.json label2id when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput


def label_ids(labels: list, artifact) -> np.ndarray:
    cfg_path = artifact.path / "config.json"
    label2id = {}
    if cfg_path.is_file():
        label2id = {str(k): int(v) for k, v in (json.loads(cfg_path.read_text()).get("label2id") or {}).items()}
    out = []
    for lab in labels:
        s = str(lab).strip()
        if s in label2id:
            out.append(label2id[s])
        elif s.lstrip("-").isdigit():
            out.append(int(s))
        else:
            known = ", ".join(sorted(label2id)) or "(config.json has no label2id)"
            raise BadInput(f"label {s!r} is neither an integer nor one of the model's labels: {known}")
    return np.asarray(out, dtype=np.int64)


def labeled_eval(artifact, data: Path, text_column: str, label_column: str, limit: int):
    from edgedeploy.data.samples import SampleSource

    src = SampleSource(artifact, data, text_column, limit=limit, label_column=label_column)
    batches = list(src)
    return batches, label_ids(src.labels, artifact)


def accuracy(model_path, batches: list[dict], labels: np.ndarray) -> float:
    from edgedeploy.runtimes.session import cpu_session

    sess = cpu_session(model_path)
    preds = []
    for feeds in batches:
        logits = sess.run([sess.get_outputs()[0].name], feeds)[0]
        if logits.ndim != 2:
            raise BadInput(f"{model_path}: task accuracy needs a classifier with 2-D logits; this output has shape {list(logits.shape)} (use --min-cosine)")
        preds.append(logits.argmax(1))
    p = np.concatenate(preds)
    return float((p == labels[: len(p)]).mean())
