"""Quantization peers vs edgedeploy on the real all-MiniLM-L6-v2, in ONE interleaved run.

batch 1 x sequence 128, threads = the host profile's, spinning off for every ONNX target
(as `edgedeploy bench` does when interleaving). Prints, for each variant: median latency,
its ratio to the fastest INT8 peer, size on disk, and fidelity (mean/min cosine of
mean-pooled sentence embeddings vs the float ONNX model) on SST-2 dev sentences.

Peers: PyTorch eager float, PyTorch dynamic INT8 (torch.ao quantize_dynamic on Linear),
ORT float, ORT quantize_dynamic with its defaults, optimum's AutoQuantizationConfig
presets (arm64, avx512_vnni; dynamic; when optimum-onnx is installed: .venv-legacy). Every
ORT/optimum peer is quantized from both parents: the plain export and the fused export that
edgedeploy's dynamic and accuracy-aware variants start from. edgedeploy: profile-chosen
dynamic (fused export), static QDQ, int4 and the accuracy-aware variant. Tuning data
(calibration, sensitivity) comes from sst2/train.tsv; the searches select on dev rows [0, 64)
and report on [64, 128); the fidelity in this table is on dev rows from 128 on.

Usage: .venv/bin/python benchmarks/quantize_compare.py [--work DIR] [--iterations N] [--reuse]
Not run by CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
SEARCH_ROWS = 64  # the accuracy-aware search selects on dev rows [0, 64) and reports on [64, 128); fidelity here reads from 128 on


def stepper(work: Path, reuse: bool):
    """``step(name, fn)``: build ``work/name`` with ``fn(path)`` unless ``reuse`` finds it there; returns the path.
    A build that raises leaves no ``work/name`` behind."""

    def step(name, fn):
        path = work / name
        if not (reuse and path.exists()):
            t0 = time.perf_counter()
            try:
                fn(path)
            except BaseException:  # a failed build leaves nothing that --reuse would take for built
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                raise
            print(f"built {name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return path

    return step


def peers(step, parent: Path, tag: str, optimum_presets) -> dict[str, Path]:
    """The INT8 peers quantized from ``parent`` (an export directory with model.onnx): ORT
    quantize_dynamic's defaults and, when optimum-onnx is installed, its AutoQuantizationConfig
    presets ``optimum_presets`` ((label, preset, per_channel), dynamic). On a fused graph ORT's
    shape inference cannot type the com.microsoft ops' outputs, so quantize_dynamic gets the one
    option that lets it read the graph (DefaultTensorType float, what ORT's error suggests); a
    peer that still cannot take the graph is left out, with the reason on stderr."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    out = {
        f"ORT quantize_dynamic defaults, {tag}": step(
            f"ort-{tag}.onnx", lambda p: quantize_dynamic(str(parent / "model.onnx"), str(p), extra_options=extra)
        )
    }
    try:
        import optimum.onnxruntime  # optimum-onnx: the transformers 4 stack
    except ImportError:
        return out
    for name, preset, per_channel in optimum_presets:

        def optimum(p, preset=preset, per_channel=per_channel):
            from optimum.onnxruntime import ORTQuantizer
            from optimum.onnxruntime.configuration import AutoQuantizationConfig

            cfg = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=per_channel)
            ORTQuantizer.from_pretrained(str(parent), file_name="model.onnx").quantize(save_dir=str(p), quantization_config=cfg)

        try:
            d = step(f"optimum-{name.replace(' ', '-')}-{tag}", optimum)
        except RuntimeError as exc:
            print(f"optimum {name} cannot quantize the {tag}: {str(exc)[:200]}", file=sys.stderr, flush=True)
            continue
        out[f"optimum {name}, {tag}"] = next(d.glob("*quantized*.onnx"))
    return out


def build(work: Path, reuse: bool, profile: str) -> dict[str, Path]:
    from edgedeploy.export import export
    from edgedeploy.quantize.api import quantize

    step = stepper(work, reuse)

    fp32 = step("fp32", lambda p: export("minilm-l6", p, force=True))
    fused = step("fp32-fused", lambda p: export("minilm-l6", p, optimize=True, force=True))
    # the peers start from both parents: the plain export and the fused one edgedeploy's variants use
    optimum = (("arm64", "arm64", False), ("avx512_vnni", "avx512_vnni", False))
    out = {"ORT float": fp32 / "model.onnx", **peers(step, fp32, "plain", optimum), **peers(step, fused, "fused", optimum)}
    train, dev = SST2 / "train.tsv", SST2 / "dev.tsv"
    common = dict(eval_data=dev, eval_samples=SEARCH_ROWS, force=True)
    out["edgedeploy dynamic (profile)"] = step("ed-dynamic", lambda p: quantize(fused, p, "dynamic", profile=profile, **common)) / "model.onnx"
    out["edgedeploy static QDQ (profile)"] = (
        step(
            "ed-static",
            lambda p: quantize(fp32, p, "static", profile=profile, calib_data=train, calib_samples=128, format="QDQ", **common),
        )
        / "model.onnx"
    )
    out["edgedeploy int4"] = step("ed-int4", lambda p: quantize(fp32, p, "int4", profile=profile, calib_data=train, **common)) / "model.onnx"
    out["edgedeploy accuracy-aware"] = (
        step(
            "ed-accuracy-aware",
            lambda p: quantize(fused, p, "dynamic", profile=profile, calib_data=train, min_mean_cosine=0.995, min_worst_cosine=0.985, **common),
        )
        / "model.onnx"
    )
    return out


def sentences(n: int, offset: int = 0):
    """SST-2 dev sentences [offset, offset + n)."""
    from edgedeploy.data.datasets import read_texts

    return read_texts(SST2 / "dev.tsv", "text", offset + n)[offset:]


def fidelity(paths: dict, torch_models: dict, tokenizer_dir: Path, n: int, offset: int = 0) -> dict:
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer

    from edgedeploy.quality.fidelity import cosine, pooled

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    texts = sentences(n, offset)
    batches = [tok(texts[i : i + 16], padding=True, truncation=True, max_length=128, return_tensors="np") for i in range(0, n, 16)]

    def embed_onnx(path):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = {i.name for i in s.get_inputs()}
        return np.concatenate(
            [pooled(s.run(None, {k: v.astype(np.int64) for k, v in b.items() if k in names})[0], b["attention_mask"]) for b in batches]
        )

    def embed_torch(model):
        outs = []
        with torch.inference_mode():
            for b in batches:
                h = model(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in b.items()}).last_hidden_state.numpy()
                outs.append(pooled(h, b["attention_mask"]))
        return np.concatenate(outs)

    ref = embed_onnx(paths["ORT float"])
    res = {}
    for name, model in torch_models.items():
        c = cosine(embed_torch(model), ref)
        res[name] = (float(c.mean()), float(c.min()))
    for name, path in paths.items():
        c = cosine(embed_onnx(path), ref)
        res[name] = (float(c.mean()), float(c.min()))
    return res


def time_models(items, run_cfg: dict, iterations: int, extra=()) -> dict:
    """[(name, model path, session settings on top of run_cfg)] (plus ``extra`` Timed targets,
    first) in ONE interleaved run; {name: result}."""
    from edgedeploy.runtimes import inputs, measure, session

    targets = list(extra)
    for name, path, own in items:
        sess, _ = session.create(str(path), {**run_cfg, **(own or {})})
        feeds = inputs.generate(session.signature(sess), {"batch": 1, "sequence": 128}, seed=0, vocab_size=30522)
        targets.append(measure.Timed(name, (lambda s=sess, f=feeds: s.run(None, f))))
    print(f"measuring {len(targets)} targets interleaved, {iterations} iterations each ...", file=sys.stderr, flush=True)
    return {r["name"]: r for r in measure.interleaved(targets, iterations, 3600, warmup=20, warmup_s=5, block=10, pause_ms=10)}


def host_setup(args) -> tuple[dict, dict]:
    """(this host's device profile, its measuring session settings with spinning off); makes --work."""
    from edgedeploy.device.doctor import diagnose
    from edgedeploy.device.profiles import load, run_settings

    args.work.mkdir(parents=True, exist_ok=True)
    profile = load(diagnose()["closest_profile"])
    return profile, dict(run_settings(profile), allow_spinning=False)


def arguments(description: str, work: str) -> argparse.Namespace:
    """The flags the comparison scripts share (tune_compare.py uses them too)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--work", type=Path, default=ROOT / "artifacts" / work)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--samples", type=int, default=128, help="SST-2 dev sentences for fidelity")
    ap.add_argument("--reuse", action="store_true", help="reuse variants already built in --work")
    return ap.parse_args()


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "bench-quantize")

    import torch

    from edgedeploy.core.sources import embedded_path
    from edgedeploy.device.doctor import diagnose
    from edgedeploy.device.profiles import load, run_settings
    from edgedeploy.exporters.huggingface import load_model
    from edgedeploy.runtimes import environment, inputs, measure, session

    args.work.mkdir(parents=True, exist_ok=True)
    profile = load(diagnose()["closest_profile"])
    threads = run_settings(profile)["intra_op_threads"]
    paths = build(args.work, args.reuse, profile["name"])

    torch.set_num_threads(threads)
    src = embedded_path("minilm-l6")
    eager = load_model(src, "feature-extraction")
    eager_int8 = torch.ao.quantization.quantize_dynamic(load_model(src, "feature-extraction"), {torch.nn.Linear}, dtype=torch.qint8)
    torch_models = {"PyTorch eager float": eager, "PyTorch dynamic INT8": eager_int8}
    fid = fidelity(paths, torch_models, args.work / "fp32", args.samples, offset=2 * SEARCH_ROWS)

    run_cfg = dict(run_settings(profile), allow_spinning=False)
    targets = []
    feeds = None
    for name, path in paths.items():
        sess, _ = session.create(str(path), run_cfg)
        f = inputs.generate(session.signature(sess), {"batch": 1, "sequence": 128}, seed=0, vocab_size=30522)
        feeds = feeds or f
        targets.append(measure.Timed(name, (lambda s=sess, x=f: s.run(None, x))))
    tfeeds = {k: torch.from_numpy(v) for k, v in feeds.items()}
    for name, model in torch_models.items():

        def run(m=model):
            with torch.inference_mode():
                m(**tfeeds)

        targets.insert(0 if name.endswith("float") else 1, measure.Timed(name, run))
    print(f"measuring {len(targets)} targets interleaved, {args.iterations} iterations each ...", file=sys.stderr, flush=True)
    results = {r["name"]: r for r in measure.interleaved(targets, args.iterations, 3600, warmup=20, warmup_s=5, block=10, pause_ms=10)}

    int8_peers = ["PyTorch dynamic INT8", *(n for n in paths if n.startswith(("ORT quantize_dynamic", "optimum")))]
    fastest_peer = min(int8_peers, key=lambda n: results[n]["latency_ms"]["p50"])
    base = results[fastest_peer]["latency_ms"]["p50"]
    float_size = paths["ORT float"].stat().st_size
    env = environment.describe({"providers_used": ["CPUExecutionProvider"], "intra_op_threads": threads, "inter_op_threads": 1}, profile["name"])
    print(
        f"\n{time.strftime('%Y-%m-%d')} | {env['cpu_model']} ({env['arch']}, {env['cores']} cores, {' '.join(env['isa_flags'])}) | "
        f"onnxruntime {env['onnxruntime']} | torch {torch.__version__} | profile {profile['name']} | {threads} threads | "
        f"MiniLM-L6 batch 1 x 128 | {args.iterations} interleaved iterations each | fidelity on SST-2 dev rows {2 * SEARCH_ROWS}-{2 * SEARCH_ROWS + args.samples - 1}"
    )
    header = f"| {'variant':34} | {'p50 ms':>7} | {'cv':>5} | {'vs fastest INT8 peer':>20} | {'size MB':>7} | {'smaller':>7} | {'mean cos':>8} | {'min cos':>7} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name in [t.name for t in targets]:
        r = results[name]
        size = paths[name].stat().st_size if name in paths else None
        mean_c, min_c = fid[name]
        size_txt = f"{size / 1e6:7.1f} | {float_size / size:6.2f}x" if size else f"{'-':>7} | {'-':>7}"
        print(
            f"| {name:34} | {r['latency_ms']['p50']:7.2f} | {r['latency_ms']['cv']:5.1%} | {r['latency_ms']['p50'] / base:19.2f}x | "
            f"{size_txt} | {mean_c:8.4f} | {min_c:7.4f} |"
        )
    print(f"\nfastest INT8 peer: {fastest_peer} ({base:.2f} ms)")
    aa = results["edgedeploy accuracy-aware"]["latency_ms"]["p50"] / base
    dyn = min(results[n]["latency_ms"]["p50"] for n in ("edgedeploy dynamic (profile)", "edgedeploy static QDQ (profile)")) / base
    i4 = float_size / paths["edgedeploy int4"].stat().st_size
    checks = [
        (
            "accuracy-aware mean cos >= 0.995, min >= 0.985, <= 1.1x fastest INT8 peer",
            fid["edgedeploy accuracy-aware"][0] >= 0.995 and fid["edgedeploy accuracy-aware"][1] >= 0.985 and aa <= 1.1,
            f"{aa:.2f}x",
        ),
        ("profile-chosen INT8 at least as fast as the fastest peer", dyn <= 1.0, f"{dyn:.2f}x"),
        (
            "int4 >= 6x smaller with mean cos >= 0.97",
            i4 >= 6 and fid["edgedeploy int4"][0] >= 0.97,
            f"{i4:.2f}x, cos {fid['edgedeploy int4'][0]:.4f}",
        ),
    ]
    for label, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value}")
    unstable = [n for n, r in results.items() if not r["stable"]]
    if unstable:
        print(f"note: CV over 10 % for {', '.join(unstable)} (shared host); ratios come from one interleaved run")


if __name__ == "__main__":
    main()
