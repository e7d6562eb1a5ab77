"""``--loadgen``: the scenarios driven by MLPerf's own LoadGen (the ``mlcommons-loadgen`` package,
``mlperf_loadgen``) when the device has it installed; the built-in scheduler (``measure.py``)
stays for devices without it. LoadGen decides when queries arrive and how many (its minimum
duration and query count, early stopping); the sessions here answer them, one worker thread per
session. The result carries LoadGen's own summary (``mlperf_log_summary.txt``, parsed) beside the
usual statistics of the latencies seen here. Device-side: standard library, numpy, LoadGen."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shutil
import tempfile
import threading
import time

from .errors import JobError
from .measure import Timed, describe, first_inference, merged, warm_up
from .stats import MIN_SAMPLES

NAMES = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "offline": "Offline", "server": "Server"}


def available() -> bool:
    return importlib.util.find_spec("mlperf_loadgen") is not None


def run(targets: list[Timed], job: dict) -> dict:
    """One model through LoadGen in the job's scenario; ``targets`` are its sessions."""
    if not available():
        raise JobError(
            "--loadgen: mlcommons-loadgen is not installed on the device (pip install mlcommons-loadgen); leave --loadgen out for the built-in scheduler"
        )
    import mlperf_loadgen as lg

    for t in targets:
        first_inference(t)
        warm_up(t, job["warmup"], job["warmup_s"])
    sut = _Sut(lg, targets)
    handle, qsl = lg.ConstructSUT(sut.issue, lambda: None), lg.ConstructQSL(1024, 1024, lambda idx: None, lambda idx: None)
    out = tempfile.mkdtemp(prefix="edgedeploy-loadgen-")
    try:
        log = lg.LogSettings()
        log.log_output.outdir = out
        t0 = time.perf_counter()
        lg.StartTestWithLogSettings(handle, qsl, settings(lg, job, targets[0]), log)
        wall = time.perf_counter() - t0
        with open(os.path.join(out, "mlperf_log_summary.txt"), encoding="utf-8", errors="replace") as fh:
            summary = parse_summary(fh.read(1 << 20))
    finally:
        sut.stop()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(handle)
        shutil.rmtree(out, ignore_errors=True)
    res = describe(merged(targets, sut.latencies_ms), wall)
    res["loadgen"] = {"scenario": NAMES[job["scenario"]], "summary": summary, "valid": summary.get("Result is") == "VALID"}
    return res


class _Sut:
    """LoadGen's system under test: queries go on a queue that one thread per session answers."""

    def __init__(self, lg, targets: list[Timed]):
        self.lg, self.work, self.issued, self.latencies_ms, self.lock = lg, queue.Queue(), {}, [], threading.Lock()
        self.threads = [threading.Thread(target=self.answer, args=(t,), daemon=True) for t in targets]
        for th in self.threads:
            th.start()

    def issue(self, samples) -> None:
        now = time.perf_counter()
        with self.lock:
            for s in samples:
                self.issued[s.id] = now
        for s in samples:
            self.work.put(s)

    def answer(self, t: Timed) -> None:
        while True:
            sample = self.work.get()
            if sample is None:
                return
            t.run()
            done = time.perf_counter()
            with self.lock:
                self.latencies_ms.append((done - self.issued.pop(sample.id)) * 1e3)
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(sample.id, 0, 0)])

    def stop(self) -> None:
        for _ in self.threads:
            self.work.put(None)


def settings(lg, job: dict, target: Timed):
    """LoadGen's TestSettings for the job: its scenario, the minimum duration (--duration) and
    query count (--iterations, at least what p99 needs), the server's rate and latency bound."""
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, NAMES[job["scenario"]])
    ts.mode = lg.TestMode.PerformanceOnly
    ts.min_duration_ms = int(job["duration_s"] * 1000)
    ts.min_query_count = max(job["iterations"], MIN_SAMPLES[99] if job["scenario"] in ("multi-stream", "server") else 1)
    expected = (target.warmup or {}).get("last_ms") or 10.0  # the last warm-up inference: LoadGen's expected latency
    ts.single_stream_expected_latency_ns = int(expected * 1e6)
    ts.multi_stream_samples_per_query = job["samples_per_query"]
    ts.multi_stream_expected_latency_ns = int(expected * 1e6 * job["samples_per_query"])
    ts.offline_expected_qps = 1000.0 / expected * job["concurrency"]
    if job["scenario"] == "server":
        ts.server_target_qps = float(job["qps"])
        ts.server_target_latency_ns = int((job["latency_budget_ms"] or 100.0) * 1e6)
    return ts


def parse_summary(text: str) -> dict:
    """``key : value`` lines of LoadGen's summary (numbers as numbers)."""
    out: dict = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([^:*=][^:]{1,80}?)\s*:\s*(.+?)\s*$", line)
        if m:
            value = m.group(2)
            try:
                out[m.group(1)] = float(value) if re.fullmatch(r"-?\d+(\.\d+)?(e[-+]?\d+)?", value) else value
            except ValueError:
                out[m.group(1)] = value
    return out
