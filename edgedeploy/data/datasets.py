"""Streaming readers for labeled text data in TSV, CSV or JSONL (header row / keys)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from edgedeploy.core.errors import BadInput


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise BadInput(f"{path}: unknown data format {suffix!r}; use .tsv, .csv or .jsonl")


def iter_rows(path, columns: tuple[str, ...] = ()) -> Iterator[dict]:
    """Yield dict rows; check once that the wanted columns exist."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such data file")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: is empty")
    fmt = _format(path)
    with open(path, newline="", encoding="utf-8") as fh:
        if fmt == "jsonl":
            rows = (json.loads(line) for line in fh if line.strip())
        else:
            # quoted fields may span lines (BANKING77 has a few), as written by csv/pandas
            rows = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
        first = True
        for row in rows:
            if first:
                missing = [c for c in columns if c not in row]
                if missing:
                    raise BadInput(
                        f"{path}: no column {', '.join(map(repr, missing))}; it has {', '.join(map(repr, row.keys()))} (choose with --text-column/--label-column)"
                    )
                first = False
            yield row
        if first:
            raise BadInput(f"{path}: has a header but no rows")


def read_texts(path, column: str = "text", limit: int | None = None) -> list[str]:
    out = []
    for row in iter_rows(path, (column,)):
        out.append(str(row[column]))
        if limit and len(out) >= limit:
            break
    return out
