"""`edgedeploy tune`'s winner beside the INT8 peers on the real all-MiniLM-L6-v2, like for like, in ONE interleaved run.

batch 1 x sequence 128, the host profile's threads, spinning off. Like for like: every INT8
peer runs in the session the winner's manifest asks for (the winner's session options), and
is quantized from both parent graphs: the plain export and the fused export tune builds
(onnxruntime.transformers fusions, SkipLayerNormalization left to ORT). The headline is the
winner against the fastest of those peers. One extra row, ORT `quantize_dynamic`'s defaults
on the plain export in the profile's own session, is where a user starts; the factor table
splits the way from there to the winner into session, fusion and quantization settings.

Fidelity: mean/worst cosine of mean-pooled sentence embeddings against the float ONNX model on
SST-2 dev rows that tune never read: it selects on dev rows [0, 128) and reports its held-out
figure on [128, 256); this table reads rows from 256 on. Calibration data is sst2/train.tsv.

Peers: ORT `quantize_dynamic` defaults; optimum's AutoQuantizationConfig arm64, avx2,
avx512_vnni (dynamic, per-tensor) and avx512_vnni per-channel when optimum-onnx is installed
(the transformers 4 stack: run with .venv-legacy/bin/python; without it those rows are left
out and the script says so). Budget: mean >= 0.995, worst >= 0.985. The target (#29): the
winner at <= 0.90x the fastest INT8 peer's p50, same session.

Usage: .venv-legacy/bin/python benchmarks/tune_compare.py [--work DIR] [--iterations N] [--reuse]
Not run by CI (tune takes a few minutes on 2 cores, the interleaved run about 2).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
sys.path.insert(0, str(Path(__file__).parent))
BUDGET = {"min_mean_cosine": 0.995, "min_worst_cosine": 0.985}
TUNE_ROWS = 128  # tune's --eval-samples: it reads dev rows [0, 2 x TUNE_ROWS)
WINNER = "edgedeploy tune winner"
PLAIN = "ORT quantize_dynamic defaults, plain export"  # the name quantize_compare.peers gives it
START = PLAIN + ", profile session"


def build(work: Path, reuse: bool, profile: str) -> tuple[dict[str, Path], dict]:
    from quantize_compare import peers, stepper

    from edgedeploy.core.artifact import Artifact
    from edgedeploy.core.sources import embedded_path
    from edgedeploy.export import export
    from edgedeploy.quantize.api import quantize
    from edgedeploy.tune import tune

    step = stepper(work, reuse)
    fp32 = step("fp32", lambda p: export("minilm-l6", p, force=True))
    # the fused parent exactly as tune builds it (tune/search.py, _fused)
    fused = step("fused", lambda p: export(str(embedded_path("minilm-l6")), p, optimize=True, no_fusion=["skip_layer_norm"], force=True))
    optimum = (("arm64", "arm64", False), ("avx2", "avx2", False), ("avx512_vnni", "avx512_vnni", False), ("avx512_vnni pc", "avx512_vnni", True))
    out = {"ORT float": fp32 / "model.onnx", **peers(step, fp32, "plain export", optimum), **peers(step, fused, "fused export", optimum)}
    dev, train = SST2 / "dev.tsv", SST2 / "train.tsv"
    out["edgedeploy dynamic (profile default)"] = (
        step("ed-dynamic", lambda p: quantize(fp32, p, "dynamic", profile=profile, force=True)) / "model.onnx"
    )
    best = step("ed-tune", lambda p: tune(fp32, p, force=True, eval_data=dev, calib_data=train, eval_samples=TUNE_ROWS, **BUDGET))
    out[WINNER] = best / "model.onnx"
    return out, Artifact.load(best).manifest.tune.winner


def main() -> None:
    from quantize_compare import arguments, fidelity, time_models

    args = arguments(__doc__.splitlines()[0], "bench-tune")

    from edgedeploy.core.artifact import Artifact
    from edgedeploy.device.doctor import diagnose
    from edgedeploy.device.profiles import load, run_settings
    from edgedeploy.runtimes import environment

    args.work.mkdir(parents=True, exist_ok=True)
    profile = load(diagnose()["closest_profile"])
    run = dict(run_settings(profile), allow_spinning=False)
    paths, winner = build(args.work, args.reuse, profile["name"])
    own = Artifact.load(paths[WINNER].parent).manifest.run
    own = (own.for_job(None) or {}) if own is not None else {}
    fid = fidelity({**paths, START: paths[PLAIN]}, {}, args.work / "fp32", args.samples, offset=2 * TUNE_ROWS)
    # every row but START runs in the winner's session; START is the same graph in the profile's
    items = [(n, p, own) for n, p in paths.items()] + [(START, paths[PLAIN], None)]
    res = time_models(items, run, args.iterations)
    p50 = {n: r["latency_ms"]["p50"] for n, r in res.items()}
    int8_peers = [n for n in paths if n.startswith(("ORT quantize_dynamic", "optimum"))]
    fastest = min(int8_peers, key=p50.get)
    env = environment.describe(
        {"providers_used": ["CPUExecutionProvider"], "intra_op_threads": run["intra_op_threads"], "inter_op_threads": 1}, profile["name"]
    )
    print(
        f"\n{time.strftime('%Y-%m-%d')} | {env['cpu_model']} ({env['arch']}, {env['cores']} cores) | onnxruntime {env['onnxruntime']} | "
        f"profile {profile['name']} | MiniLM-L6 1x128 | {args.iterations} interleaved iterations | "
        f"fidelity on SST-2 dev rows {2 * TUNE_ROWS}-{2 * TUNE_ROWS + args.samples - 1} | session of every row but the last: {own or 'the profile'}"
    )
    if not any(n.startswith("optimum") for n in paths):
        print("(optimum-onnx is not installed: its presets are left out; run with .venv-legacy/bin/python to include them)")
    print("| variant | p50 ms | cv | vs fastest INT8 peer | mean cos | worst cos |")
    print("|---|---|---|---|---|---|")
    for name in [*paths, START]:
        r = res[name]["latency_ms"]
        print(f"| {name} | {r['p50']:.2f} | {r['cv']:.1%} | {r['p50'] / p50[fastest]:.2f}x | {fid[name][0]:.4f} | {fid[name][1]:.4f} |")
    factors(p50)
    ratio, (mean_c, worst_c) = p50[WINNER] / p50[fastest], fid[WINNER]
    ok = ratio <= 0.90 and mean_c >= BUDGET["min_mean_cosine"] and worst_c >= BUDGET["min_worst_cosine"]
    print(
        f"\nwinner: {winner.get('label')}\nfastest INT8 peer in the same session: {fastest} ({p50[fastest]:.2f} ms); "
        f"winner {ratio:.2f}x at mean {mean_c:.4f} / worst {worst_c:.4f}: target <= 0.90x {'MET' if ok else 'NOT MET'}"
    )
    unstable = [n for n, r in res.items() if not r["stable"]]
    if unstable:
        print(f"note: CV over 10 % for {len(unstable)} of {len(res)} rows (shared host); ratios come from one interleaved run")


def factors(p50: dict) -> None:
    """From quantize_dynamic's defaults as a user starts to the winner, one change at a time."""
    steps = [
        ("quantize_dynamic defaults, plain export, profile session", START),
        ("+ the winner's session options", PLAIN),
        ("+ the fused export", "ORT quantize_dynamic defaults, fused export"),
        ("+ tune's quantization settings (the winner)", WINNER),
    ]
    print("\n| step | p50 ms | this step | from the start |\n|---|---|---|---|")
    prev = p50[START]
    for label, name in steps:
        print(f"| {label} | {p50[name]:.2f} | {p50[name] / prev:.2f}x | {p50[name] / p50[START]:.2f}x |")
        prev = p50[name]


if __name__ == "__main__":
    main()
