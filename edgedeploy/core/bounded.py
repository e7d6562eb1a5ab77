"""Reading a file someone else wrote with a size limit: the size is checked before reading and
at most ``limit + 1`` bytes are read, so a huge or endless file (a sparse 3 GB file, a FIFO,
/dev/zero) is refused without filling memory.

The limits, in one place (docs/untrusted-input.md):
- a companion JSON file (config.json, tokenizer_config.json, generation_config.json, ...): 16 MiB;
- a tokenizer file (tokenizer.json, vocab, merges, sentencepiece model): 256 MiB;
- an ONNX graph file: 2 GiB, protobuf's own limit (weights beyond it live in external data).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from edgedeploy.core.errors import BadInput


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``; ``BadInput`` naming it when it is over ``limit`` bytes (a regular
    file is refused by its size, before reading)."""
    st = os.stat(path)
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise BadInput(f"{path}: {st.st_size:,} bytes is too large for a {what} (limit {limit:,} bytes)")
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise BadInput(f"{path}: too large for a {what} (limit {limit:,} bytes)")
    return raw


MAX_JSON_BYTES = 16 << 20
MAX_TOKENIZER_BYTES = 256 << 20
MAX_ONNX_BYTES = (2 << 30) - 1
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


def limit_for(name: str) -> int:
    """The size limit of a companion file, by its name."""
    return MAX_TOKENIZER_BYTES if name in TOKENIZER_FILES else MAX_JSON_BYTES


def check_size(path: Path, limit: int, what: str) -> int:
    """The size of ``path`` (a regular file) from its metadata, before anything is read: ``BadInput``
    naming it when it is over ``limit`` bytes or not a regular file."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(f"{path}: not a regular file; a {what} is a file")
    if st.st_size > limit:
        raise BadInput(f"{path}: {st.st_size:,} bytes is too large for a {what} (limit {limit:,} bytes)")
    return st.st_size


def read_json_bounded(path: Path, what: str, limit: int = MAX_JSON_BYTES) -> dict:
    """A JSON object from ``path``: size-checked first; not JSON, nested too deeply or not an
    object is ``BadInput`` naming the file (exit 2), never ignored."""
    check_size(path, limit, what)
    raw = read_bounded(path, limit, what)
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text; a {what} is JSON") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); fix or remove the {what}") from None
    except RecursionError:
        raise BadInput(f"{path}: JSON nested too deeply for a {what}") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: a {what} is a JSON object, got {type(doc).__name__}")
    return doc
