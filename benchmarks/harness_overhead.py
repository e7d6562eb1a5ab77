"""Harness overhead on MiniLM float and dynamic INT8, in one interleaved run.

Three ways to time the same session, same inputs, same threads:
  A. a bare `for` loop around `InferenceSession.run` (default session: spinning on),
  B. the same bare loop around the harness's session (profile settings),
  C. the harness's own timing loop (`measure.steady`) on that session.
Prints medians and the ratios C/B (what the harness's loop costs) and B/A (what the
profile's session settings cost against a default InferenceSession).

Usage: .venv/bin/python benchmarks/harness_overhead.py [--iterations N] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--work", type=Path, default=ROOT / "artifacts" / "bench-harness")
    args = ap.parse_args()

    import onnxruntime as ort

    from edgedeploy.device.doctor import diagnose
    from edgedeploy.device.profiles import load, run_settings
    from edgedeploy.export import export
    from edgedeploy.quantize.api import quantize
    from edgedeploy.runtimes import inputs, measure, session

    fp32 = args.work / "fp32"
    int8 = args.work / "int8"
    if not fp32.exists():
        export("minilm-l6", fp32)
    if not int8.exists():
        quantize(fp32, int8, "dynamic", random_calibration=True, eval_samples=8)
    profile = load(diagnose()["closest_profile"])
    run = run_settings(profile)
    rows = []
    for name, art in (("fp32", fp32), ("int8", int8)):
        model = str(art / "model.onnx")
        harness_sess, _ = session.create(model, run)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = run["intra_op_threads"]
        default_sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        feeds = inputs.generate(session.signature(harness_sess), {"batch": 1, "sequence": 128}, vocab_size=30522)
        target = measure.Timed(name, lambda sess=harness_sess, feeds=feeds: sess.run(None, feeds))
        for s in (default_sess, harness_sess):
            for _ in range(20):
                s.run(None, feeds)
        a, b = [], []
        for _ in range(max(1, args.iterations // 50)):  # interleave blocks of 50
            for sess, sink in ((default_sess, a), (harness_sess, b)):
                for _ in range(50):
                    t0 = time.perf_counter()
                    sess.run(None, feeds)
                    sink.append((time.perf_counter() - t0) * 1e3)
            measure.steady(target, len(target.latencies_ms) + 50, 3600)
        ma, mb, mc = (float(np.median(x)) for x in (a, b, target.latencies_ms))
        rows.append((name, ma, mb, mc))
    print(f"profile {profile['name']}, {run['intra_op_threads']} threads, MiniLM batch 1 x 128, {args.iterations} iterations per way")
    print(
        "| model | A bare loop, default session | B bare loop, harness session | C harness loop | C/B (harness loop cost) | B/A (session settings) |"
    )
    print("|---|---|---|---|---|---|")
    for name, ma, mb, mc in rows:
        print(f"| {name} | {ma:.2f} ms | {mb:.2f} ms | {mc:.2f} ms | {mc / mb:.3f} | {mb / ma:.3f} |")


if __name__ == "__main__":
    main()
