"""Streaming readers for labeled text data in TSV, CSV or JSONL (header row / keys).

A data file is read as data: a UTF-8 byte-order mark is dropped, no line may be longer than
``MAX_LINE_CHARS`` (checked while reading, so a 2 GB file without a newline is refused after
1 MiB, not after reading it whole), and every error names the file and the line. TSV takes a
``"`` as opening a quoted field only at the start of a field, as pandas and csv write it (the
shared BANKING77 files have quoted fields with doubled quotes and line breaks); a quoted field
that would swallow a tab, i.e. run into the next field or row, is refused naming the line where
the quote opened, instead of silently joining lines.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from edgedeploy.core.errors import BadInput

MAX_LINE_CHARS = 1 << 20  # a row of text and a label; a longer line is not a data file


class Row(dict):
    """One row of a data file, with the line it starts on (for messages)."""

    line: int = 0


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
    with open(path, newline="", encoding="utf-8-sig") as fh:
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
                if fmt == "tsv" and any(isinstance(v, str) and "\t" in v for v in row.values()):
                    raise BadInput(
                        f'{path}:{line}: a field opened with " runs into the next field; TSV fields hold no tabs (close the quote or remove it)'
                    )
                row = Row(row)
                row.line = line
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

    def _lines(self):
        """The file's lines, each read with a bound: a line over ``MAX_LINE_CHARS`` is refused as it is read."""
        n = 0
        while True:
            text = self.fh.readline(MAX_LINE_CHARS + 1)
            if not text:
                return
            n += 1
            if len(text) > MAX_LINE_CHARS:
                raise BadInput(f"{self.path}:{n}: line longer than {MAX_LINE_CHARS:,} characters; not a data file of text rows")
            yield text

    def __iter__(self):
        if self.fmt == "jsonl":
            for n, text in enumerate(self._lines(), 1):
                self.line = n
                if text.strip():
                    yield self.line, self._json(text)
            return
        # quoted fields may span lines (BANKING77 has a few), as written by csv/pandas
        self.reader = csv.DictReader(self._lines(), delimiter="\t" if self.fmt == "tsv" else ",", strict=True)
        self.start = 2
        for row in self.reader:
            yield self.start, row
            self.start = self.reader.line_num + 1

    @property
    def at(self):
        """The line being read (where a csv.Error happened)."""
        reader = getattr(self, "reader", None)
        if reader is None:
            return self.line
        return getattr(self, "start", None) or reader.reader.line_num or 1  # where the row (and any quote it opened) began

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
