"""The candidates ``tune`` tries, pruned by what the device profile already knows.

The search is staged so it never builds the whole product: one base per method, format and
parent export with the profile's preset (and SmoothQuant where calibration data is given),
measured on the target; then the one-setting neighbours (per-channel, reduce_range, weight
type, SmoothQuant alpha, percentile calibration, int4 block/symmetry/accuracy_level) of the two
fastest bases within budget; then, only when nothing meets the budget, float-node sets from the
sensitivity ranking; then session options for the winner (threads, optimization level, memory
arena, ORT fusions switched off). Rules from the profile:

- reduce_range only on x86 without VNNI (elsewhere 7-bit weights only lose precision);
- QOperator only on CPU targets (TensorRT and NPUs take QDQ);
- u8/u8 weights only where the profile does not already use them, s8 weights otherwise;
- static and SmoothQuant only with calibration data.
"""

from __future__ import annotations

import hashlib
import json

from edgedeploy.quantize import methods

VNNI = ("avx512_vnni", "avx_vnni", "avxvnni", "asimddp", "dotprod")


def candidate(method: str, parent: str = "plain", **settings) -> dict:
    settings = {k: v for k, v in sorted(settings.items()) if v is not None}
    key = json.dumps({"method": method, "parent": parent, **settings}, sort_keys=True, default=str)
    parts = dict.fromkeys([method, *(_short(k, v) for k, v in settings.items())] + ([parent] if parent != "plain" else []))
    label = "-".join(parts)
    return {"id": hashlib.sha256(key.encode()).hexdigest()[:12], "label": label, "method": method, "parent": parent, "settings": settings}


def _short(k, v) -> str:
    names = {"per_channel": ("pc", "pt"), "reduce_range": ("rr", "fr"), "quantize_outputs": ("qout", "fout"), "symmetric": ("sym", "asym")}
    if k in names:
        return names[k][0 if v else 1]
    if k == "weight_type":
        return "w" + ("s8" if v == "int8" else "u8")
    if k == "smooth_quant":
        return f"sq{v}"
    if k == "format":
        return v.lower()
    if k == "min_mean_cosine" or k == "min_worst_cosine" or k == "max_accuracy_drop":
        return "float-nodes"
    return f"{k.replace('_', '')}{v}"


def rules(profile: dict) -> dict:
    isa = set(profile["target"].get("isa") or [])
    x86 = profile["target"]["arch"] in ("x86_64", "amd64")
    cpu = profile["peaks"]["compute_unit"] == "cpu"
    q = profile["quantization"]
    return {
        "reduce_range": x86 and not (isa & set(VNNI)),
        "qoperator": cpu,
        "weight_types": ["int8", "uint8"] if cpu else ["int8"],
        "profile_weight_type": q.get("weight_type", "int8"),
        "int8_faster": q.get("int8_faster", True),
    }


def bases(profile: dict, names, have_calib: bool, have_fused: bool) -> tuple[list[dict], list[str]]:
    """(base candidates of the methods ``names``, why some were skipped), from each method's space."""
    r, out, skipped = rules(profile), [], []
    for name in names:
        found, why = methods.get(name).tune_bases(r, have_calib, have_fused)
        out += [candidate(name, parent, **settings) for parent, settings in found]
        skipped += why
    return out, skipped


def neighbours(base: dict, profile: dict) -> list[dict]:
    """Each base with one setting changed, as its method proposes."""
    s = dict(base["settings"])
    flips = methods.get(base["method"]).tune_neighbours(s, rules(profile))
    return [candidate(base["method"], base["parent"], **{**s, **f}) for f in flips]


def with_float_nodes(base: dict, budget: dict) -> dict | None:
    """The base plus an accuracy-aware search for the fidelity budget (sensitivity-ranked nodes kept float)."""
    if not methods.get(base["method"]).smoothing or all(budget.get(k) is None for k in ("min_mean_cosine", "min_worst_cosine", "max_accuracy_drop")):
        return None
    extra = {
        "min_mean_cosine": budget.get("min_mean_cosine"),
        "min_worst_cosine": budget.get("min_worst_cosine"),
        "max_accuracy_drop": budget.get("max_accuracy_drop"),
    }
    return candidate(base["method"], base["parent"], **base["settings"], **extra)


def session_variants(profile_run: dict, cores: int) -> list[dict]:
    """Session options tried on the winner; {} is the profile's own. On the CPU provider also
    ONNX Runtime without SkipLayerNormFusion (its CPU SkipLayerNormalization kernel is slower than
    LayerNormalization + Add on the hosts measured; the fused parent leaves that fusion to ORT)."""
    threads = int(profile_run.get("intra_op_threads") or cores)
    out = [{}]
    for t in sorted({1, max(1, cores)} - {threads}):
        out.append({"intra_op_threads": t})
    out.append({"graph_optimization_level": "extended"})
    out.append({"cpu_mem_arena": False})
    if (profile_run.get("providers") or ["CPUExecutionProvider"])[0] == "CPUExecutionProvider":
        out.append({"disabled_optimizers": ["SkipLayerNormFusion"]})
    return out
