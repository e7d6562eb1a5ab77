"""File names from names someone else chose (model names, device labels, a device's
results): one character set, no leading dot, no separators, and never two alike, so a
name can neither climb out of its directory nor land on another's file."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, fallback: str = "item") -> str:
    """``name`` reduced to letters, digits, '.', '_' and '-', not starting with '.' (at most 100 chars)."""
    cleaned = _UNSAFE.sub("_", str(name)).lstrip(".")[:100]
    return cleaned or fallback


def unique_file_names(names, suffix: str = "") -> list[str]:
    """One safe file name per name, in order; clashes (``x/tiny_`` and ``y/tiny``, or the same
    name twice) get ``-2``, ``-3``... so no two names share a file. Case-insensitive, for file
    systems that fold case."""
    taken: set[str] = set()
    out = []
    for n in names:
        base = safe_name(n)
        candidate, i = base, 1
        while (candidate + suffix).lower() in taken:
            i += 1
            candidate = f"{base}-{i}"
        taken.add((candidate + suffix).lower())
        out.append(candidate + suffix)
    return out
