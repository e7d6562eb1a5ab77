"""Reading a file someone else wrote with a size limit: at most ``limit + 1`` bytes are read,
so a huge or endless file (a FIFO, /dev/zero) is refused without filling memory."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.core.errors import BadInput


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``; ``BadInput`` naming it when it is over ``limit`` bytes."""
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise BadInput(f"{path}: too large for a {what} (limit {limit:,} bytes)")
    return raw
