"""Static QDQ INT8 that keeps fidelity, against the old static graph and float, on the real all-MiniLM-L6-v2, in ONE interleaved run.

batch 1 x sequence 128, the host profile's threads, spinning off. Calibration: 64 SST-2 train
sentences; fidelity: mean/worst cosine of mean-pooled embeddings against the float export on
SST-2 dev sentences. Variants (per-channel weights, minmax calibration):
- old: every QDQ tensor quantized, MatMul outputs too, no SmoothQuant (`--quantize-outputs --smooth-quant 0`);
- no SmoothQuant: MatMul outputs float (`--smooth-quant 0`);
- new, the defaults: MatMul outputs float, SmoothQuant 0.7 on the outlier-heavy tensors (no flag);
each also with ONNX Runtime's SkipLayerNormFusion off (the session `edgedeploy tune` tries).
The target (#16): new at mean >= 0.99, worst >= 0.97, keeping at least 90 % of the old graph's
speed-up over float.

Usage: .venv/bin/python benchmarks/static_compare.py [--work DIR] [--iterations N] [--reuse]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
NO_SKIP_LN = {"disabled_optimizers": ["SkipLayerNormFusion"]}


def main() -> None:
    from quantize_compare import SST2, arguments, fidelity, host_setup, stepper, time_models

    args = arguments(__doc__.splitlines()[0], "bench-static")

    from edgedeploy.export import export
    from edgedeploy.quantize.api import quantize

    profile, run = host_setup(args)
    step = stepper(args.work, args.reuse)
    fp32 = step("fp32", lambda p: export("minilm-l6", p, force=True))
    common = dict(format="QDQ", calib_data=SST2 / "train.tsv", calib_samples=64, per_channel=True, force=True)
    old = step("static-old", lambda p: quantize(fp32, p, "static", quantize_outputs=True, smooth_quant=0, **common))
    plain = step("static-no-sq", lambda p: quantize(fp32, p, "static", smooth_quant=0, **common))
    new = step("static-new", lambda p: quantize(fp32, p, "static", **common))
    paths = {
        "ORT float": fp32 / "model.onnx",
        "static old graph": old / "model.onnx",
        "static outputs float, no SmoothQuant": plain / "model.onnx",
        "static new (outputs float + SmoothQuant)": new / "model.onnx",
    }
    fid = fidelity(paths, {}, fp32, args.samples)
    items = [(n, p, None) for n, p in paths.items()] + [(n + " | no SkipLN fusion", p, NO_SKIP_LN) for n, p in paths.items()]
    res = time_models(items, run, args.iterations)
    print(f"\n{time.strftime('%Y-%m-%d')} | profile {profile['name']} | MiniLM-L6 1x128 | {args.iterations} interleaved iterations")
    print("| variant | p50 ms | cv | speed-up over float (same session) | mean cos | worst cos |")
    print("|---|---|---|---|---|---|")
    speedup = {}
    for name, _, own in items:
        r = res[name]["latency_ms"]
        flt = res["ORT float" + (" | no SkipLN fusion" if own else "")]["latency_ms"]["p50"]
        speedup[name] = flt / r["p50"]
        c = fid[name.split(" | ")[0]]
        print(f"| {name} | {r['p50']:.2f} | {r['cv']:.1%} | {speedup[name]:.2f}x | {c[0]:.4f} | {c[1]:.4f} |")
    mean_c, worst_c = fid["static new (outputs float + SmoothQuant)"]
    kept = (speedup["static new (outputs float + SmoothQuant)"] - 1) / (speedup["static old graph"] - 1)
    ok = mean_c >= 0.99 and worst_c >= 0.97 and kept >= 0.9
    print(
        f"\nnew static keeps {kept:.0%} of the old graph's speed-up over float at mean {mean_c:.4f} / worst {worst_c:.4f}: {'MET' if ok else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
