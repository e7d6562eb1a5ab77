"""A deterministic split of one data file into the rows a search selects on and the held-out
rows the winner is reported on: the first ``n`` rows, then the next ``n`` (each half when the
file has fewer than ``2n``). The parts are written as files of the same kind (JSONL rows of the
columns used, or an .npz of the same arrays), so every consumer reads them as it reads --data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgedeploy.core.atomic import write_bytes_atomic
from edgedeploy.core.errors import BadInput
from edgedeploy.data.datasets import iter_rows
from edgedeploy.runtimes.inputs import MAX_INPUT_BYTES


def selection_rows(data: Path, rows: int, n: int) -> int:
    """How many leading rows of ``data`` (``rows`` of them, counted up to ``2n``) a search selects
    on: ``n``, or half when there are fewer than ``2n``; as many rows after them are held out."""
    if rows < 2:
        raise BadInput(f"{data}: {rows} row(s); a search selects on some rows and reports on others: give at least 2")
    return min(n, rows // 2)


def split(data: Path, columns: tuple[str, ...], n: int, out_dir: Path) -> dict:
    """{"selection": path, "held_out": path, "record": {...}}: rows [0, k) and [k, k + m) of
    ``data`` written into ``out_dir``, with k = m = n, or half the rows each when there are fewer."""
    data = Path(data)
    if data.suffix == ".npz":
        arrays = _npz(data)
        rows = min(len(a) for a in arrays.values())
    else:
        kept = [{c: r[c] for c in columns if c in r} for _, r in zip(range(2 * n), iter_rows(data, columns))]
        rows = len(kept)
    k = selection_rows(data, rows, n)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, (lo, hi) in {"selection": (0, k), "held_out": (k, min(rows, 2 * k))}.items():
        if data.suffix == ".npz":
            path = out_dir / f"{part}.npz"
            np.savez(path, **{name: a[lo:hi] for name, a in arrays.items()})
        else:
            path = out_dir / f"{part}.jsonl"
            write_bytes_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept[lo:hi]).encode("utf-8"))
        paths[part] = path
    record = {"file": str(data), "selection_rows": [0, k], "held_out_rows": [k, min(rows, 2 * k)]}
    return {**paths, "record": record}


def _npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            if sum(i.file_size for i in data.zip.infolist()) > MAX_INPUT_BYTES:  # checked before anything is inflated
                raise BadInput(f"{path}: the inputs are over {MAX_INPUT_BYTES / 2**30:.0f} GiB uncompressed; use fewer samples")
            return {name: data[name] for name in data.files}
    except BadInput:
        raise
    except Exception as exc:  # OSError, ValueError, zipfile.BadZipFile: a file that is not an npz of arrays
        raise BadInput(f"{path}: not a readable .npz ({str(exc)[:200]})") from None
