"""Ranges the device enforces on what a job asks of it (standard library only).

Thread counts: ONNX Runtime allocates a pool per session, so a count far above the CPUs only
costs memory (10^5 threads took 2 GB before any inference) or overflows its C++ integer. A run
may ask for up to ``THREADS_PER_CPU`` threads per CPU of the device it runs on, and never more
than ``MAX_THREADS``; 0 means "one per core" (ONNX Runtime's default).
"""

from __future__ import annotations

import os

THREADS_PER_CPU = 4
MAX_THREADS = 1024


def max_threads(cpus: int | None = None) -> int:
    """The most threads a session may ask for on a device with ``cpus`` CPUs (this one by default)."""
    return min(MAX_THREADS, THREADS_PER_CPU * max(1, cpus if cpus is not None else os.cpu_count() or 1))


def check_threads(value, field: str, cpus: int | None = None, allow_zero: bool = True) -> str | None:
    """``None`` when ``value`` is a thread count this device accepts, else what is wrong (naming ``field``)."""
    hi = max_threads(cpus)
    lo = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{field} must be an integer, got {value!r:.80}"
    if not lo <= value <= hi:
        return f"{field} {value}: must be {lo}..{hi} ({THREADS_PER_CPU} per CPU of the device, at most {MAX_THREADS})"
    return None
