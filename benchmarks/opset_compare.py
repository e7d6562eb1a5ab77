"""MiniLM-L6 exported at opset 23 (ONNX's own Attention op) against the default opset-18 export, in ONE interleaved run.

transformers 5 stack (torch.export): `edgedeploy export minilm-l6` and `--opset 23`, both
validated against PyTorch by the export itself. batch 1 x sequence 128, the host profile's
threads, spinning off; fidelity: mean/worst cosine of mean-pooled embeddings of the opset-23
graph against the opset-18 one on SST-2 dev sentences.

Usage: .venv/bin/python benchmarks/opset_compare.py [--work DIR] [--iterations N] [--reuse]
Not run by CI (about 1 minute on 2 cores).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    import onnx
    from quantize_compare import arguments, fidelity, host_setup, stepper, time_models

    args = arguments(__doc__.splitlines()[0], "bench-opset")

    from edgedeploy.export import export
    from edgedeploy.runtimes import environment

    profile, run = host_setup(args)
    step = stepper(args.work, args.reuse)
    paths = {
        "ORT float": step("fp32", lambda p: export("minilm-l6", p, force=True)) / "model.onnx",
        "opset 23": step("opset23", lambda p: export("minilm-l6", p, opset=23, force=True)) / "model.onnx",
    }
    attention = sum(n.op_type == "Attention" for n in onnx.load(str(paths["opset 23"]), load_external_data=False).graph.node)
    fid = fidelity(paths, {}, args.work / "fp32", args.samples)
    res = time_models([(n, p, None) for n, p in paths.items()], run, args.iterations)
    env = environment.describe(
        {"providers_used": ["CPUExecutionProvider"], "intra_op_threads": run["intra_op_threads"], "inter_op_threads": 1}, profile["name"]
    )
    print(
        f"\n{time.strftime('%Y-%m-%d')} | {env['cpu_model']} ({env['arch']}, {env['cores']} cores) | onnxruntime {env['onnxruntime']} | "
        f"profile {profile['name']} | MiniLM-L6 1x128 | {args.iterations} interleaved iterations | fidelity on {args.samples} SST-2 dev sentences"
    )
    print("| export | Attention ops | p50 ms | cv | vs opset 18 | mean cos | worst cos |\n|---|---|---|---|---|---|---|")
    base = res["ORT float"]["latency_ms"]["p50"]
    for name, label, n_att in (("ORT float", "opset 18 (default)", 0), ("opset 23", "opset 23", attention)):
        r = res[name]["latency_ms"]
        print(f"| {label} | {n_att} | {r['p50']:.2f} | {r['cv']:.1%} | {r['p50'] / base:.2f}x | {fid[name][0]:.4f} | {fid[name][1]:.4f} |")


if __name__ == "__main__":
    main()
