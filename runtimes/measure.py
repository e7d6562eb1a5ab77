"""Timing loops after MLPerf LoadGen's scenarios. Standard library and numpy only.

Every scenario measures, separately: the first inference (cold), a warm-up (bounded by
count and time, reported), then the steady state bounded by ``iterations`` and
``duration_s`` (whichever comes first). ``run`` is a zero-argument callable doing one
inference with inputs already bound, so the loop adds only two clock reads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .stats import MIN_SAMPLES, is_stable, summarize

Progress = Callable[[str, int, int], None]


@dataclass
class Timed:
    """One thing the harness times: a callable (a session run on fixed feeds) and its latencies."""

    name: str
    run: Callable[[], object]
    batch: int = 1
    latencies_ms: list = field(default_factory=list)
    first_inference_ms: float | None = None
    warmup: dict | None = None


def _clock() -> float:
    return time.perf_counter()


def first_inference(target: Timed) -> float:
    t0 = _clock()
    target.run()
    target.first_inference_ms = (_clock() - t0) * 1e3
    return target.first_inference_ms


def warm_up(target: Timed, iterations: int, duration_s: float) -> dict:
    """Run at least one and at most ``iterations`` warm-up inferences, stopping early at
    ``duration_s``; record how many and how long they took."""
    times = []
    deadline = _clock() + duration_s
    for _ in range(max(1, iterations)):
        t0 = _clock()
        target.run()
        times.append((_clock() - t0) * 1e3)
        if _clock() >= deadline:
            break
    target.warmup = {"iterations": len(times), "total_ms": float(sum(times)), "last_ms": float(times[-1])}
    return target.warmup


def steady(target: Timed, iterations: int, duration_s: float, progress: Progress | None = None) -> list[float]:
    lat = target.latencies_ms
    run = target.run
    deadline = _clock() + duration_s
    next_report = _clock() + 1.0
    while len(lat) < iterations:
        t0 = _clock()
        run()
        t1 = _clock()
        lat.append((t1 - t0) * 1e3)
        if t1 >= deadline:
            break
        if progress and t1 >= next_report:
            progress(target.name, len(lat), iterations)
            next_report = t1 + 1.0
    return lat


def single_stream(target: Timed, iterations: int, duration_s: float, warmup: int, warmup_s: float, progress=None) -> dict:
    first_inference(target)
    warm_up(target, warmup, warmup_s)
    t0 = _clock()
    steady(target, iterations, duration_s, progress)
    wall = _clock() - t0
    return describe(target, wall)


def interleaved(
    targets: list[Timed], iterations: int, duration_s: float, warmup: int, warmup_s: float, block: int = 10, pause_ms: float = 10.0, progress=None
) -> list[dict]:
    """Round-robin blocks of ``block`` inferences per target, so drift on a shared host
    hits every target alike. A short pause between blocks lets idle thread pools settle."""
    for t in targets:
        first_inference(t)
    for t in targets:
        warm_up(t, warmup, warmup_s)
    deadline = _clock() + duration_s
    walls = {t.name: 0.0 for t in targets}
    done = False
    while not done:
        done = True
        for t in targets:
            remaining = iterations - len(t.latencies_ms)
            if remaining <= 0:
                continue
            t0 = _clock()
            steady(t, len(t.latencies_ms) + min(block, remaining), math.inf)
            walls[t.name] += _clock() - t0
            if pause_ms:
                time.sleep(pause_ms / 1e3)
            if len(t.latencies_ms) < iterations:
                done = False
        if progress:
            for t in targets:
                progress(t.name, len(t.latencies_ms), iterations)
        if _clock() >= deadline:
            break
    return [describe(t, walls[t.name]) for t in targets]


def offline(targets: list[Timed], iterations: int, duration_s: float, warmup: int, warmup_s: float, progress=None) -> dict:
    """``targets`` are ``concurrency`` independent sessions of one model, each driven by its
    own thread; throughput is all samples over the wall time of the concurrent phase."""
    for t in targets:
        first_inference(t)
        warm_up(t, warmup, warmup_s)
    per_thread = max(1, math.ceil(iterations / len(targets)))
    t0 = _clock()
    _in_threads(lambda t: steady(t, per_thread, duration_s), targets)
    wall = _clock() - t0
    res = describe(merged(targets, [x for t in targets for x in t.latencies_ms]), wall)
    res["concurrency"] = len(targets)
    return res


def server(
    targets: list[Timed],
    qps: float,
    iterations: int,
    duration_s: float,
    warmup: int,
    warmup_s: float,
    latency_budget_ms: float | None,
    seed: int = 0,
    progress=None,
) -> dict:
    """Poisson arrivals at ``qps``; latency counts from the scheduled arrival, so queueing
    behind slow queries shows up in p99. ``targets`` are the worker sessions. As LoadGen's
    server scenario: at least ``duration_s`` of arrivals and at least as many queries as p99
    needs (``iterations`` does not cap it), so the p99 and the budget's verdict are always there."""
    for t in targets:
        first_inference(t)
        warm_up(t, warmup, warmup_s)
    n = server_queries(qps, duration_s)
    rng = np.random.default_rng(seed)
    # the first query arrives at once, the rest as a Poisson process
    arrivals = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0 / qps, size=n - 1))])
    lat = [0.0] * n
    next_index = [0]
    lock = threading.Lock()
    start = _clock() + 0.01

    def worker(t: Timed):
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= n:
                return
            due = start + arrivals[i]
            delay = due - _clock()
            if delay > 0:
                time.sleep(delay)
            t.run()
            lat[i] = (_clock() - due) * 1e3

    _in_threads(worker, targets)
    wall = _clock() - start
    res = describe(merged(targets, lat), wall)
    p99 = res["latency_ms"]["p99"]
    res.update(
        {
            "target_qps": qps,
            "achieved_qps": n / wall if wall > 0 else None,
            "queries": n,
            "min_queries": MIN_SAMPLES[99],
            "latency_budget_ms": latency_budget_ms,
            "budget_held": None if latency_budget_ms is None else bool(p99 <= latency_budget_ms),
            "concurrency": len(targets),
        }
    )
    return res


def server_queries(qps: float, duration_s: float) -> int:
    """Queries of a server run: the arrivals of ``duration_s`` at ``qps``, and never fewer than p99 needs."""
    return max(MIN_SAMPLES[99], int(math.ceil(qps * duration_s)))


def multi_stream(target: Timed, samples_per_query: int, iterations: int, duration_s: float, warmup: int, warmup_s: float, progress=None) -> dict:
    """LoadGen's MultiStream: a query is ``samples_per_query`` samples (here run back to back on
    one session), the next query is issued when the last one completes, and the metric is the
    p99 of query latency. At least as many queries as p99 needs; beyond that, ``iterations``
    or ``duration_s``, whichever comes first."""
    first_inference(target)
    warm_up(target, warmup, warmup_s)
    want = max(iterations, MIN_SAMPLES[99])
    lat, t0 = [], _clock()
    while len(lat) < want and not (len(lat) >= MIN_SAMPLES[99] and _clock() - t0 >= duration_s):
        q = _clock()
        for _ in range(samples_per_query):
            target.run()
        lat.append((_clock() - q) * 1e3)
        if progress is not None and len(lat) % 50 == 0:
            progress(target.name, len(lat), want)
    wall = _clock() - t0
    query = Timed(target.name, target.run, target.batch * samples_per_query)
    query.latencies_ms, query.first_inference_ms, query.warmup = lat, target.first_inference_ms, target.warmup
    res = describe(query, wall)
    res.update({"samples_per_query": samples_per_query, "queries": len(lat), "min_queries": MIN_SAMPLES[99]})
    return res


def _in_threads(fn, targets: list[Timed]) -> None:
    threads = [threading.Thread(target=fn, args=(t,)) for t in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def merged(targets: list[Timed], latencies: list[float]) -> Timed:
    """One result for several worker sessions of the same model."""
    merged = Timed(targets[0].name, targets[0].run, targets[0].batch)
    merged.latencies_ms = latencies
    merged.first_inference_ms = targets[0].first_inference_ms
    merged.warmup = targets[0].warmup
    return merged


def describe(target: Timed, wall_s: float) -> dict:
    lat = target.latencies_ms
    summary = summarize(lat)
    samples = len(lat) * target.batch
    return {
        "name": target.name,
        "latency_ms": summary,
        "throughput_per_s": samples / wall_s if wall_s > 0 else None,
        "first_inference_ms": target.first_inference_ms,
        "warmup": target.warmup,
        "stable": is_stable(summary),
        "samples": len(lat),
        "batch": target.batch,
        "latencies_ms": [round(x, 4) for x in lat],
    }
