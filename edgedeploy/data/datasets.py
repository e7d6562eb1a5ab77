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
    """Yield dict rows; check once that the wanted columns exist. A file that is not UTF-8
    text, a bad JSON line or a malformed row is a ``BadInput`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such data file")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: is empty")
    fmt = _format(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = _parsed(fh, fmt, path)
        first = True
        try:
            for line, row in rows:
                if first:
                    missing = [c for c in columns if c not in row]
                    if missing:
                        raise BadInput(
                            f"{path}: no column {', '.join(map(repr, missing))}; it has {', '.join(map(repr, row.keys()))} (choose with --text-column/--label-column)"
                        )
                    first = False
                short = [c for c in columns if row.get(c) is None]
                if short:
                    raise BadInput(f"{path}:{line}: the row has no value for {', '.join(map(repr, short))}")
                yield row
        except UnicodeDecodeError:
            raise BadInput(f"{path}: not UTF-8 text (a data file is TSV, CSV or JSONL)") from None
        except csv.Error as exc:
            raise BadInput(f"{path}:{rows.at}: malformed {fmt.upper()} ({exc})") from None
        if first:
            raise BadInput(f"{path}: has a header but no rows")


class _parsed:
    """(line number, row dict) pairs of a TSV/CSV/JSONL stream; ``line`` is the current line."""

    def __init__(self, fh, fmt: str, path: Path):
        self.fh, self.fmt, self.path, self.line = fh, fmt, path, 0

    def __iter__(self):
        if self.fmt == "jsonl":
            for n, text in enumerate(self.fh, 1):
                self.line = n
                if text.strip():
                    yield self.line, self._json(text)
            return
        # quoted fields may span lines (BANKING77 has a few), as written by csv/pandas
        self.reader = csv.DictReader(self.fh, delimiter="\t" if self.fmt == "tsv" else ",")
        for row in self.reader:
            yield self.reader.line_num, row

    @property
    def at(self):
        """The line being read (where a csv.Error happened)."""
        reader = getattr(self, "reader", None)
        return (reader.reader.line_num or 1) if reader is not None else self.line

    def _json(self, text: str) -> dict:
        try:
            row = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise BadInput(f"{self.path}:{self.line}: not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})") from None
        if not isinstance(row, dict):
            raise BadInput(f"{self.path}:{self.line}: expected one JSON object per line, got {type(row).__name__}")
        return row


def read_texts(path, column: str = "text", limit: int | None = None) -> list[str]:
    out = []
    for row in iter_rows(path, (column,)):
        out.append(str(row[column]))
        if limit and len(out) >= limit:
            break
    return out
