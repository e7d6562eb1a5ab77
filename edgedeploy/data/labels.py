"""Labels to class ids, in one place: a label is one of the model's names (``label2id`` in its
config) or an integer id in range. Used by task accuracy, evaluation, pruning, distillation
and the reference classifiers."""

from __future__ import annotations

import numpy as np

from edgedeploy.core.errors import BadInput


def to_ids(labels, label2id: dict[str, int], num_labels: int | None = None, where: str = "", lines: list[int] | None = None) -> np.ndarray:
    """Class ids for ``labels`` (strings or integers); a label that is neither a name nor an
    id in ``0..num_labels-1`` is bad input naming the data file (``where``) and the line
    (``lines[i]``, else the row number)."""
    names = {str(k): int(v) for k, v in (label2id or {}).items()}
    n = num_labels if num_labels is not None else (max(names.values()) + 1 if names else None)
    out = []
    for i, lab in enumerate(labels):
        s = str(lab).strip()
        if s in names:
            out.append(names[s])
        elif s.isdigit() and (n is None or int(s) < n):
            out.append(int(s))
        else:
            known = ", ".join(sorted(names)) or (f"0..{n - 1}" if n else "(the model has no label names)")
            at = f"{where}:{lines[i]}" if where and lines else f"{where + ': ' if where else ''}row {i + 1}"
            raise BadInput(f"{at}: label {s!r} is not one of the model's labels ({known})")
    return np.asarray(out, dtype=np.int64)


def config_label2id(config) -> dict[str, int]:
    """``label2id`` of a transformers config object or a config.json dict."""
    raw = config.get("label2id") if isinstance(config, dict) else getattr(config, "label2id", None)
    return {str(k): int(v) for k, v in (raw or {}).items()}
