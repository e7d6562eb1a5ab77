"""Latency statistics. Standard library and numpy only.

p50 is the ordinary median; p90/p99 are nearest-rank percentiles as MLPerf LoadGen
reports them (the smallest sample with at least p % of samples at or below it), and are
only reported with enough samples: 64 for p90 and 662 for p99 (LoadGen's early-stopping
minimums). ``cv`` is the sample standard deviation over the mean.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SAMPLES = {90: 64, 99: 662}
UNSTABLE_CV = 0.10


def nearest_rank(sorted_values, p: float) -> float:
    n = len(sorted_values)
    k = max(1, math.ceil(p / 100.0 * n))
    return float(sorted_values[k - 1])


def summarize(latencies_ms) -> dict:
    arr = np.asarray(latencies_ms, dtype=np.float64)
    n = int(arr.size)
    if n == 0:
        raise ValueError("no latency samples")
    s = np.sort(arr)
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if n > 1 else 0.0
    out = {
        "p50": float(np.median(s)),
        "p90": nearest_rank(s, 90) if n >= MIN_SAMPLES[90] else None,
        "p99": nearest_rank(s, 99) if n >= MIN_SAMPLES[99] else None,
        "mean": mean,
        "std": std,
        "min": float(s[0]),
        "max": float(s[-1]),
        "cv": std / mean if mean > 0 else 0.0,
    }
    missing = [f"p{p} needs >= {m} samples, have {n}" for p, m in MIN_SAMPLES.items() if n < m]
    if missing:
        out["not_available"] = missing
    return out


def is_stable(summary: dict) -> bool:
    return summary["cv"] <= UNSTABLE_CV
