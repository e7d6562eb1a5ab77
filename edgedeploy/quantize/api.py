"""Orchestration: parent artifact -> pre-processed float model -> method -> fidelity on
real samples -> new artifact whose manifest records the parent's hash and every setting."""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path

from edgedeploy.core.adopt import open_model
from edgedeploy.core.artifact import Artifact, finalize_manifest, is_artifact, onnx_signature
from edgedeploy.core.atomic import checkpoint, refuse_inside, refuse_same, scratch_directory, staged_directory
from edgedeploy.core.errors import BadInput, ValidationFailed
from edgedeploy.core.options import coerce
from edgedeploy.data.datasets import iter_rows
from edgedeploy.data.samples import SampleSource
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.device.profiles import load as load_profile
from edgedeploy.quality.accuracy import accuracy, labeled_eval
from edgedeploy.quality.fidelity import compare_models, reference_outputs
from edgedeploy.quantize import exclusions, methods, smoothing
from edgedeploy.quantize import settings as settings_mod
from edgedeploy.quantize.graphs import quantize_graphs
from edgedeploy.quantize.options import QuantizeOptions
from edgedeploy.quantize.preprocess import preprocess
from edgedeploy.quantize.sensitivity import Budget, candidates, rank
from edgedeploy.quantize.sensitivity import search as accuracy_search

log = logging.getLogger("edgedeploy")
METHODS = ("dynamic", "static", "fp16", "int4")
SMOOTH_SAMPLES = 64  # calibration samples whose activation maxima set SmoothQuant's scales
QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "MatMulNBits",
    "QLinearMatMul",
    "DynamicQuantizeMatMul",
    "GatherBlockQuantized",
    "QAttention",
    "QLinearConv",
    "ConvInteger",
}


def already_quantized(art: Artifact, model) -> str | None:
    if art.manifest.get("quantization"):
        return f"it was made by 'edgedeploy quantize --method {art.manifest['quantization']['method']}'"
    ops = {n.op_type for n in model.graph.node} & QUANTIZED_OPS
    if ops:
        return f"its graph already holds {', '.join(sorted(ops))}"
    if any(i.data_type == 10 for i in model.graph.initializer):  # FLOAT16
        return "its weights are already float16"
    return None


def quantize(artifact, out: Path, method: str | None = None, *, options: QuantizeOptions | None = None, force: bool = False, **fields) -> Artifact:
    """Quantize ``artifact`` into a new artifact at ``out``. The options are a ``QuantizeOptions``
    or its fields as keyword arguments (``quantize(a, out, "dynamic", eval_data=dev)``); the
    method's settings (``method_settings``) are resolved from them, the profile and the defaults."""
    import onnx

    opts = options if options is not None else coerce(QuantizeOptions, {"method": method, **fields}, "quantize")
    method, calib_data, eval_data, text_column = opts.method, opts.calib_data, opts.eval_data, opts.text_column
    eval_samples, exclude = opts.eval_samples, tuple(opts.exclude)
    parent = open_model(artifact)
    if parent.adopted:  # a .onnx among other files: only the directory itself is off limits
        refuse_same(out, parent.path, "the model's directory")
    else:
        refuse_inside(out, parent.path, "the parent artifact")
    prof = load_profile(resolve_profile(opts.profile)) if opts.profile else None
    parent_model = onnx.load(str(parent.model_path), load_external_data=False)
    why = already_quantized(parent, parent_model)
    if why:
        raise BadInput(f"{parent.path}: is already quantized ({why}); quantize the float parent instead")
    method_settings, chosen_by = settings_mod.resolve(method, prof, opts.overrides(), opts.int4_preset)
    has_conv = any(n.op_type == "Conv" for n in parent_model.graph.node)
    if method == "static" and parent.manifest["source"].get("family") == "transformer":
        # Quantizing Softmax/LayerNorm/Add activations wrecks transformer accuracy; MatMuls carry the compute.
        method_settings["op_types"], chosen_by["op_types"] = ["MatMul", "Gemm", "Gather"], "default for transformer families"
    notes = settings_mod.predictions(method, prof, has_conv)
    for n in notes:
        log.warning("note: %s", n)
    if len(parent.graph_files) > 1:
        record = {"profile": prof["name"] if prof else None, "chosen_by": chosen_by, "options": opts.recorded(), "notes": notes}
        return quantize_graphs(parent, out, opts, method_settings, record, force)
    if method == "static" and calib_data is None and not opts.random_calibration:
        raise BadInput("static quantization needs --calib-data FILE (TSV/CSV/JSONL text or .npz); random calibration only with --random-calibration")
    eval_src = SampleSource(parent, eval_data or calib_data, text_column, limit=eval_samples, allow_random=True)
    if eval_src.kind != "random":
        next(iter(eval_src))  # fail fast on wrong columns or an empty file, before any work
    if opts.smooth_quant and method not in ("dynamic", "static"):
        raise BadInput(f"--smooth-quant applies to dynamic and static INT8, not {method}")
    if opts.smooth_quant and calib_data is None and not (method == "static" and opts.random_calibration):
        raise BadInput("--smooth-quant measures activation ranges: give --calib-data FILE")
    calib_src = None
    gptq = method == "int4" and opts.int4_algorithm == "gptq"
    if gptq and calib_data is None:
        raise BadInput("--int4-algorithm gptq calibrates on text: give --calib-data FILE")
    if method == "static" or opts.smooth_quant or gptq:
        calib_src = SampleSource(
            parent, calib_data, text_column, limit=opts.calib_samples, batch=1, allow_random=opts.random_calibration, pad_to_max=True
        )
        next(iter(calib_src))

    with (
        scratch_directory(out) as work,
        staged_directory(out, force=force, is_artifact=is_artifact) as stage,
    ):
        work = Path(work)
        pre = work / "preprocessed.onnx"
        log.info("pre-processing %s", parent.model_path)
        pre_info = _preprocess(parent.model_path, pre)
        checkpoint()
        resolved = exclusions.resolve_preprocessed(pre, parent.model_path, exclude) if exclude else {}
        excluded = exclusions.flatten(resolved)
        if opts.smooth_quant:  # adds a Mul per smoothed tensor and renames no node, so ``excluded`` still holds
            calib = itertools.islice(iter(calib_src), SMOOTH_SAMPLES)
            pre_info["smooth_quant"] = smoothing.smooth(pre, work / "smoothed.onnx", calib, opts.smooth_quant, excluded, opts.smooth_quant_min_ratio)
            pre = work / "smoothed.onnx"
        search = None
        cache = work / "calibration.json"

        calib_total = _count(calib_src) if calib_src is not None else 0

        def run(m, src, dst, st, excl, only=None):
            return _run_method(m, src, dst, st, excl, calib_src, calib_total, only, cache)

        # Tuning decisions (sensitivity, search) use the calibration data when given, so the
        # fidelity reported on --data is measured on samples the search never saw.
        tune_src = SampleSource(parent, calib_data, text_column, limit=eval_samples) if calib_data else eval_src
        if method == "int4" and method_settings["int4_sensitive_8bit"]:
            method_settings["keep_8bit"] = _most_sensitive_matmuls(pre, method_settings, tune_src, parent.model_path, run, work, excluded)
        log.info("quantizing (%s)", method)
        used = run(method, pre, stage / "model.onnx", method_settings, excluded)
        checkpoint()
        if opts.accuracy_aware():
            budget = Budget(opts.min_mean_cosine, opts.min_worst_cosine, opts.max_accuracy_drop)
            if opts.max_accuracy_drop is not None:
                budget.accuracy, budget.parent_accuracy = _task_accuracy(parent, eval_data, text_column, opts.label_column, eval_samples)
            # the search leaves stage/model.onnx quantized with its final float set
            search = accuracy_search(method, pre, stage / "model.onnx", method_settings, excluded, run, tune_src, parent.model_path, budget, work)
            excluded = search["excluded"]
            checkpoint()
        log.info("measuring fidelity against the parent on %s", eval_src.describe()["source"])
        fid = compare_models(stage / "model.onnx", parent.model_path, eval_src)
        fid.update({"inputs": eval_src.describe(), "reference": parent.digest})
        if not fid["finite"]:
            raise ValidationFailed(f"{method} model produced NaN or Inf on the evaluation samples; add ops to the block list (--exclude) and retry")
        _copy_companions(parent, stage)
        inputs, outputs, opset, params = onnx_signature(stage / "model.onnx")
        size = (stage / "model.onnx").stat().st_size
        parent_size = parent.model_path.stat().st_size
        manifest = {
            "kind": "edgedeploy-artifact",
            "source": parent.manifest["source"],
            "lineage": {"parent": parent.digest, "parent_path": str(parent.path), "step": f"quantize:{method}"},
            "model_file": "model.onnx",
            "opset": opset,
            "inputs": inputs,
            "outputs": outputs,
            "parameters": params,
            "vocab_size": parent.manifest.get("vocab_size"),
            **({"generation": parent.manifest["generation"]} if isinstance(parent.manifest.get("generation"), dict) else {}),
            "quantization": {
                "method": method,
                "profile": prof["name"] if prof else None,
                "settings": used,
                "chosen_by": chosen_by,
                "options": opts.recorded(),
                "nodes_kept_float": excluded,
                "exclude_patterns": resolved,
                "preprocess": pre_info,
                "model_bytes": size,
                "parent_model_bytes": parent_size,
                "compression_ratio": parent_size / size,
                "notes": notes,
                "accuracy_search": search,
            },
            "fidelity": fid,
        }
        if eval_src.kind == "random" or (calib_src is not None and calib_src.kind == "random"):
            manifest["quantization"]["warning"] = "calibration and/or fidelity used random inputs, not real data"
        finalize_manifest(stage, manifest)
        checkpoint()
    return Artifact.load(out)


def _copy_companions(parent: Artifact, stage: Path) -> None:
    """The parent's tokenizer and config files: exactly those its manifest lists (verified, so
    plain files), never the float model or its external data, never through a link."""
    model = set(parent.model_files())
    for name in sorted(set(parent.manifest["files"]) - model):
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parent.path / name, stage / name, follow_symlinks=False)


def _task_accuracy(parent, eval_data, text_column, label_column, limit):
    """(accuracy function over model files, the parent's accuracy) on labeled eval data."""
    if eval_data is None:
        raise BadInput("--max-accuracy-drop needs labeled --data (with --label-column)")
    batches, labels = labeled_eval(parent, eval_data, text_column, label_column, limit)
    fn = lambda path: accuracy(path, batches, labels)
    return fn, fn(parent.model_path)


def _preprocess(src: Path, dst: Path) -> dict:
    try:
        return preprocess(src, dst)
    except RuntimeError as exc:
        raise ValidationFailed(f"{src}: {exc}") from None


def _run_method(method, pre, dst, settings, excluded, calib_src, calib_total, only=None, cache=None):
    if method == "dynamic":
        return methods.dynamic(pre, dst, settings, excluded, only)
    if method == "fp16":
        return methods.fp16(pre, dst, settings, excluded, only)
    if method == "int4":
        if settings.get("int4_algorithm") == "gptq" and only is None and calib_src is not None:
            from edgedeploy.quantize.calibration import StreamingReader

            return methods.int4(pre, dst, settings, excluded, only, StreamingReader(calib_src, calib_total))
        return methods.int4(pre, dst, settings, excluded, only)

    from edgedeploy.quantize.calibration import StreamingReader  # onnxruntime.quantization imports onnx

    reader = StreamingReader(calib_src, calib_total)
    return methods.static(pre, dst, settings, excluded, reader, only, cache)


def _most_sensitive_matmuls(pre, settings, eval_src, parent_model, run, work, excluded) -> list[str]:
    """The MatMuls whose 4-bit quantization hurts fidelity most, measured one at a time."""
    probe_settings = {**settings, "int4_embeddings": False, "keep_8bit": [], "int4_algorithm": "rtn"}  # ranking: round-to-nearest probes
    nodes = [n for n in candidates(pre, "int4") if n not in excluded]
    log.info("int4: ranking %d MatMuls by measured sensitivity to keep %d at 8-bit", len(nodes), settings["int4_sensitive_8bit"])
    ranked = rank("int4", pre, probe_settings, nodes, run, reference_outputs(parent_model, eval_src), work)
    return [n for n, _ in ranked[: settings["int4_sensitive_8bit"]]]


def _count(src) -> int:
    if src.kind != "text":
        return src.limit if src.kind == "random" else sum(len(next(iter(b.values()))) for b in src)
    n = 0
    for _ in iter_rows(src.path, (src.text_column,)):
        n += 1
        if n >= src.limit:
            break
    return n
