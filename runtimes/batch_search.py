"""Offline's batch: MLPerf's Offline scenario reports throughput with every sample available at
once, so the system may batch as it likes. The harness finds the largest batch that fits and
still pays: from the job's batch it doubles while the session runs it (an allocation failure
ends the search), the device keeps enough free memory for the next doubling, and throughput per
sample still grows by at least 5 %. Device-side: standard library and numpy."""

from __future__ import annotations

import os
import time

MIN_GAIN = 1.05
TRIES = 5  # runs per batch size, after one warm-up run


def mem_available_mb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb() -> float:
    """This process's resident memory now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def _rate(run, batch: int) -> float:
    run()
    t0 = time.perf_counter()
    for _ in range(TRIES):
        run()
    return TRIES * batch / (time.perf_counter() - t0)


def search(start: int, max_batch: int, make_run) -> dict:
    """{"batch": the chosen batch, "tried": [{"batch", "samples_per_s"} or {"batch", "stopped"}]}.
    ``make_run(batch)`` returns a zero-argument run at that batch (None when the model's batch
    is fixed)."""
    tried, best, batch = [], start, start
    while batch <= max_batch:
        before = rss_mb()
        try:
            run = make_run(batch)
            if run is None:
                tried.append({"batch": batch, "stopped": "the model's batch dimension is fixed"})
                break
            rate = _rate(run, batch)
        except MemoryError:
            tried.append({"batch": batch, "stopped": "out of memory"})
            break
        except Exception as exc:  # onnxruntime's allocation failures are RuntimeExceptions
            tried.append({"batch": batch, "stopped": f"{type(exc).__name__}: {str(exc)[:120]}"})
            break
        tried.append({"batch": batch, "samples_per_s": rate})
        prev = next((t["samples_per_s"] for t in reversed(tried[:-1]) if "samples_per_s" in t), None)
        if prev is not None and rate < prev * MIN_GAIN:
            tried[-1]["stopped"] = f"under {MIN_GAIN - 1:.0%} more samples/s than batch {best}"
            break
        best = batch
        free, grew = mem_available_mb(), max(0.0, rss_mb() - before)
        if free is not None and grew * 2 > free * 0.8:
            tried[-1]["stopped"] = f"doubling would need about {grew * 2:.0f} MB more; {free:.0f} MB available"
            break
        batch *= 2
    return {"batch": best, "tried": tried}
