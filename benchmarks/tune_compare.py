"""`edgedeploy tune`'s winner beside the INT8 peers on the real all-MiniLM-L6-v2, in ONE interleaved run.

batch 1 x sequence 128, the host profile's threads, spinning off for every target (as
`edgedeploy bench` does when interleaving). Fidelity: mean/worst cosine of mean-pooled
sentence embeddings against the float ONNX model on SST-2 dev sentences; calibration and
tuning data come from sst2/train.tsv.

Peers: ORT `quantize_dynamic` with its defaults; optimum's AutoQuantizationConfig presets
arm64, avx2, avx512_vnni (dynamic, per-tensor) and avx512_vnni per-channel. edgedeploy: the
profile's dynamic default, and the winner of `edgedeploy tune` with the budget
mean >= 0.995, worst >= 0.985. The target (#16): the winner at <= 0.95x the fastest INT8
peer's p50.

Usage: .venv/bin/python benchmarks/tune_compare.py [--work DIR] [--iterations N] [--reuse]
Not run by CI (the tune run alone takes up to 15 minutes on 2 cores). The winner runs with the session
its manifest asks for (`run`); the fastest peer kind is also shown with that session.
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
WINNER = "edgedeploy tune winner"
PEERS = ("ORT quantize_dynamic defaults", "optimum arm64", "optimum avx2", "optimum avx512_vnni", "optimum avx512_vnni per-channel")


def build(work: Path, reuse: bool, profile: str) -> tuple[dict[str, Path], dict]:
    from onnxruntime.quantization import quantize_dynamic
    from quantize_compare import stepper

    from edgedeploy.export import export
    from edgedeploy.quantize.api import quantize
    from edgedeploy.tune import tune

    step = stepper(work, reuse)

    fp32 = step("fp32", lambda p: export("minilm-l6", p, force=True))
    out = {"ORT float": fp32 / "model.onnx"}
    out[PEERS[0]] = step("ort-dynamic-defaults.onnx", lambda p: quantize_dynamic(str(fp32 / "model.onnx"), str(p)))
    for name, preset, per_channel in (
        ("arm64", "arm64", False),
        ("avx2", "avx2", False),
        ("avx512_vnni", "avx512_vnni", False),
        ("avx512_vnni per-channel", "avx512_vnni", True),
    ):

        def optimum(p, preset=preset, per_channel=per_channel):
            from optimum.onnxruntime import ORTQuantizer
            from optimum.onnxruntime.configuration import AutoQuantizationConfig

            cfg = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=per_channel)
            ORTQuantizer.from_pretrained(str(fp32), file_name="model.onnx").quantize(save_dir=str(p), quantization_config=cfg)

        d = step(f"optimum-{name.replace(' ', '-')}", optimum)
        out[f"optimum {name}"] = next(d.glob("*quantized*.onnx"))
    dev, train = SST2 / "dev.tsv", SST2 / "train.tsv"
    out["edgedeploy dynamic (profile)"] = (
        step("ed-dynamic", lambda p: quantize(fp32, p, "dynamic", profile=profile, eval_data=dev, force=True)) / "model.onnx"
    )
    best = step("ed-tune", lambda p: tune(fp32, p, force=True, eval_data=dev, calib_data=train, eval_samples=128, **BUDGET))
    from edgedeploy.core.artifact import Artifact

    winner = Artifact.load(best).manifest["tune"]["winner"]
    out[WINNER] = best / "model.onnx"
    return out, winner


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
    # the winner runs with the session its manifest asks for (what `edgedeploy bench` gives it);
    # the fastest kind of peer also runs with that session, to show what the session alone buys
    own = Artifact.load(paths[WINNER].parent).manifest.get("run") or {}
    if own:
        paths[f"{PEERS[0]} + the winner's session"] = paths[PEERS[0]]
    fid = fidelity(paths, {}, args.work / "fp32", args.samples)
    res = time_models([(n, p, own if n.startswith(WINNER) or n.endswith("session") else None) for n, p in paths.items()], run, args.iterations)
    fastest = min(PEERS, key=lambda n: res[n]["latency_ms"]["p50"])
    base = res[fastest]["latency_ms"]["p50"]
    env = environment.describe(
        {"providers_used": ["CPUExecutionProvider"], "intra_op_threads": run["intra_op_threads"], "inter_op_threads": 1}, profile["name"]
    )
    print(
        f"\n{time.strftime('%Y-%m-%d')} | {env['cpu_model']} ({env['arch']}, {env['cores']} cores) | onnxruntime {env['onnxruntime']} | "
        f"profile {profile['name']} | MiniLM-L6 1x128 | {args.iterations} interleaved iterations | fidelity on {args.samples} SST-2 dev sentences"
    )
    print("| variant | p50 ms | cv | vs fastest INT8 peer | mean cos | worst cos |")
    print("|---|---|---|---|---|---|")
    for name in paths:
        r = res[name]["latency_ms"]
        print(f"| {name} | {r['p50']:.2f} | {r['cv']:.1%} | {r['p50'] / base:.2f}x | {fid[name][0]:.4f} | {fid[name][1]:.4f} |")
    tuned = WINNER
    ratio = res[tuned]["latency_ms"]["p50"] / base
    mean_c, worst_c = fid[tuned]
    ok = ratio <= 0.95 and mean_c >= BUDGET["min_mean_cosine"] and worst_c >= BUDGET["min_worst_cosine"]
    print(
        f"\nwinner: {winner['label']}, session {own or 'of the profile'}"
        f"\nfastest INT8 peer: {fastest} ({base:.2f} ms); tune winner {ratio:.2f}x at mean {mean_c:.4f} / worst {worst_c:.4f}: target <= 0.95x {'MET' if ok else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
