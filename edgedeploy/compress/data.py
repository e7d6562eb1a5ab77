"""Labeled text for training and evaluating PyTorch models: rows read once, labels mapped
through the model's ``label2id`` (or taken as integers), batches tokenized on the fly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.data.datasets import iter_rows
from edgedeploy.data.labels import config_label2id, to_ids


@dataclass
class TextSet:
    path: Path
    texts: list[str]
    labels: np.ndarray | None  # class ids, or None for unlabeled text

    def __len__(self) -> int:
        return len(self.texts)


def load(
    path, config, *, text_column: str = "text", label_column: str | None = "label", limit: int | None = None, seed: int = 0, need_labels: bool = False
) -> TextSet:
    """Read ``path`` (TSV/CSV/JSONL). ``limit`` takes a seeded random subset, not the head of the file."""
    path = Path(path)
    cols = (text_column,) + ((label_column,) if label_column and need_labels else ())
    rows = list(iter_rows(path, cols))
    has_labels = bool(label_column) and label_column in rows[0]
    if limit is not None and limit < len(rows):
        pick = np.sort(np.random.default_rng(seed).permutation(len(rows))[:limit])
        rows = [rows[i] for i in pick]
    texts = [str(r[text_column]) for r in rows]
    if not has_labels:
        return TextSet(path, texts, None)
    n_labels = int(getattr(config, "num_labels", 0) or 0) or None
    ids = to_ids([r[label_column] for r in rows], config_label2id(config), n_labels, str(path), [r.line for r in rows])
    return TextSet(path, texts, ids)


def load_training(opts, config, *, need_labels: bool) -> TextSet:
    """The training rows of a ``TrainingOptions`` (its file, columns, seeded subset)."""
    return load(
        opts.train_data,
        config,
        text_column=opts.text_column,
        label_column=opts.label_column,
        limit=opts.train_subset,
        seed=opts.seed,
        need_labels=need_labels,
    )


def batches(tokenizer, data: TextSet, order, batch_size: int, max_length: int):
    """Yield (encoded inputs, labels or None) for the rows in ``order``, batch by batch."""
    import torch

    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        enc = tokenizer([data.texts[j] for j in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        labels = torch.from_numpy(data.labels[idx]) if data.labels is not None else None
        yield dict(enc), labels


def accuracy(model, tokenizer, data: TextSet, max_length: int = 128, batch_size: int = 64) -> float:
    """Accuracy of a PyTorch sequence classifier on labeled ``data``."""
    import torch

    if data.labels is None:
        raise BadInput(f"{data.path}: accuracy needs a label column")
    was_training = model.training
    model.eval()
    preds = []
    with torch.inference_mode():
        for enc, _ in batches(tokenizer, data, np.arange(len(data)), batch_size, max_length):
            preds.append(model(**enc).logits.argmax(-1).numpy())
    model.train(was_training)
    return float((np.concatenate(preds) == data.labels).mean())
