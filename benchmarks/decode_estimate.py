"""ESTIMATED decode tokens/s on rpi4, rpi5 and Jetson from a bandwidth model, with its error measured on this host.

Decode at batch 1 reads every weight a token passes through once per token: each MatMul's
weights (lm_head included) and one row of each embedding table. Estimated tokens/s =
memory bandwidth / those bytes, with each profile's datasheet bandwidth (`peaks`). The same
model for this host's profile is compared with what `edgedeploy run examples/edgeformer.yaml`
measured here, which gives the model's error where it can be checked. Nothing here runs on a
Pi or a Jetson: every device number it prints is an ESTIMATE.

Usage: .venv/bin/python benchmarks/decode_estimate.py [RUN_DIR]   (default runs/edgeformer)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ("rpi4", "rpi5", "jetson-orin-nano")


def bytes_per_token(model_path: Path) -> int:
    """Weight bytes one decode step reads: every MatMul-like weight, one row per embedding table."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(model_path)).graph
    inits = {i.name: i for i in g.initializer}
    total = 0
    for n in g.node:
        for slot, name in enumerate(n.input):
            if name not in inits:
                continue
            w = numpy_helper.to_array(inits[name])
            # a table (and its scales) that is indexed by token ids is read one row per token
            indexed = n.op_type in ("Gather", "GatherBlockQuantized") and slot != 1 and w.ndim >= 1 and w.shape[0] > 1
            total += w.nbytes // w.shape[0] if indexed else w.nbytes
    return total


def main() -> None:
    from edgedeploy.device.doctor import diagnose
    from edgedeploy.device.profiles import load

    run = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "edgeformer"
    report = json.loads((run / "report.json").read_text())
    host = load(diagnose()["closest_profile"])
    measured = report["targets"][0]["results"]
    bw = {d: load(d)["peaks"]["memory_bandwidth_gbs"] for d in DEVICES}
    print(f"ESTIMATE (bandwidth model; host profile {host['name']}, {host['peaks']['memory_bandwidth_gbs']} GB/s)")
    print(
        "| variant | MB read per token | host measured tok/s | host estimate tok/s | estimate / measured | "
        + " | ".join(f"{d} ESTIMATE tok/s" for d in DEVICES)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(DEVICES))
    for v in report["variants"]:
        if not v.get("artifact"):
            continue
        b = bytes_per_token(Path(v["artifact"]) / "model.onnx")
        est_host = host["peaks"]["memory_bandwidth_gbs"] * 1e9 / b
        got = (measured.get(v["name"]) or {}).get("decode_tokens_per_s")
        ratio = f"{est_host / got:.2f}" if got else "-"
        dev = " | ".join(f"{bw[d] * 1e9 / b:,.0f}" for d in DEVICES)
        print(f"| {v['name']} | {b / 1e6:.2f} | {f'{got:,.0f}' if got else '-'} | {est_host:,.0f} | {ratio} | {dev} |")


if __name__ == "__main__":
    main()
