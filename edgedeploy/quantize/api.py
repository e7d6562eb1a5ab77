"""Orchestration: parent artifact -> pre-processed float model -> method -> fidelity on
real samples -> new artifact whose manifest records the parent's hash and every setting."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

from edgedeploy.core.adopt import open_model
from edgedeploy.core.artifact import Artifact, finalize_manifest
from edgedeploy.core.atomic import checkpoint, refuse_inside, refuse_same
from edgedeploy.core.derive import copy_companions, derive, derived_manifest
from edgedeploy.core.errors import BadInput, ValidationFailed
from edgedeploy.core.manifest import Fidelity, Quantization
from edgedeploy.core.options import coerce
from edgedeploy.data.datasets import iter_rows
from edgedeploy.data.samples import SampleSource
from edgedeploy.data.split import selection_rows
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.device.profiles import load as load_profile
from edgedeploy.quality.accuracy import accuracy, labeled_eval
from edgedeploy.quality.fidelity import compare_models, reference_outputs, worst_cosine
from edgedeploy.quantize import exclusions, methods, smoothing
from edgedeploy.quantize import settings as settings_mod
from edgedeploy.quantize.graphs import quantize_graphs
from edgedeploy.quantize.options import QuantizeOptions
from edgedeploy.quantize.preprocess import preprocess
from edgedeploy.quantize.sensitivity import Budget, candidates, rank
from edgedeploy.quantize.sensitivity import search as accuracy_search

log = logging.getLogger("edgedeploy")
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
    if art.manifest.quantization is not None:
        return f"it was made by 'edgedeploy quantize --method {art.manifest.quantization.method}'"
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
    opts = options if options is not None else coerce(QuantizeOptions, {"method": method, **fields}, "quantize")
    method = opts.method
    parent, plan = _plan(artifact, out, opts)
    method_settings = plan["method_settings"]
    opts = _default_smoothing(opts, parent, method_settings, plan["chosen_by"])
    if len(parent.graph_files) > 1:
        record = {"profile": plan["profile"], "chosen_by": plan["chosen_by"], "options": opts.recorded(), "notes": plan["notes"]}
        return quantize_graphs(parent, out, opts, method_settings, record, force)
    selects = opts.accuracy_aware() or bool(method_settings.get("int4_sensitive_8bit"))
    eval_src, calib_src, tune_src = _sample_sources(parent, opts, methods.get(method), method_settings, selects)
    with derive(out, force) as (work, stage):
        pre, pre_info, resolved, excluded = _prepare(parent, work, opts, calib_src)
        run = _runner(calib_src, work / "calibration.json")
        if method_settings.get("int4_sensitive_8bit"):
            method_settings["keep_8bit"] = _most_sensitive_matmuls(pre, method_settings, tune_src, parent.model_path, run, work, excluded)
        log.info("quantizing (%s)", method)
        used = run(method, pre, stage / "model.onnx", method_settings, excluded)
        checkpoint()
        search = None
        if opts.accuracy_aware():  # leaves stage/model.onnx quantized with its final float set
            search = _accuracy_search(parent, opts, pre, stage / "model.onnx", method_settings, excluded, run, tune_src, work)
            excluded = search["excluded"]
            checkpoint()
        log.info("measuring fidelity against the parent on %s", eval_src.describe()["source"])
        fid = compare_models(stage / "model.onnx", parent.model_path, eval_src)
        fid.update({"inputs": eval_src.describe(), "reference": parent.digest})
        if not fid["finite"]:
            raise ValidationFailed(f"{method} model produced NaN or Inf on the evaluation samples; add ops to the block list (--exclude) and retry")
        if search is not None:
            _check_held_out(search, fid, parent, opts, stage / "model.onnx", eval_src)
        copy_companions(parent, stage)
        size, parent_size = (stage / "model.onnx").stat().st_size, parent.model_path.stat().st_size
        random = eval_src.kind == "random" or (calib_src is not None and calib_src.kind == "random")
        quantization = Quantization(
            method=method,
            profile=plan["profile"],
            settings=used,
            chosen_by=plan["chosen_by"],
            options=opts.recorded(),
            nodes_kept_float=excluded,
            exclude_patterns=resolved,
            preprocess=pre_info,
            model_bytes=size,
            parent_model_bytes=parent_size,
            compression_ratio=parent_size / size,
            notes=plan["notes"],
            accuracy_search=search,
            warning="calibration and/or fidelity used random inputs, not real data" if random else None,
        )
        manifest = derived_manifest(parent, stage, f"quantize:{method}", quantization=quantization, fidelity=Fidelity.model_validate(fid))
        finalize_manifest(stage, manifest)
        checkpoint()
    return Artifact.load(out)


def _plan(artifact, out: Path, opts: QuantizeOptions) -> tuple[Artifact, dict]:
    """(the parent, its plan: the method's settings and who chose each, the profile's name, the
    notes said before any work); exit 2 for an output inside the parent or a quantized parent."""
    import onnx

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
    method_settings, chosen_by = settings_mod.resolve(opts.method, prof, opts.overrides())
    methods.get(opts.method).for_family(parent.manifest.source.family, method_settings, chosen_by)
    notes = settings_mod.predictions(opts.method, prof, any(n.op_type == "Conv" for n in parent_model.graph.node))
    for n in notes:
        log.warning("note: %s", n)
    return parent, {"method_settings": method_settings, "chosen_by": chosen_by, "profile": prof["name"] if prof else None, "notes": notes}


def _default_smoothing(opts: QuantizeOptions, parent: Artifact, settings: dict, chosen_by: dict) -> QuantizeOptions:
    """``opts`` with the method's default SmoothQuant alpha where the user gave none, the data
    is real, the weights per-channel and the model one graph (recorded in ``chosen_by``)."""
    alpha = methods.get(opts.method).default_smooth_quant
    if alpha is None or opts.smooth_quant is not None or opts.calib_data is None or not settings.get("per_channel", True):
        return opts
    if len(parent.graph_files) > 1:
        return opts
    chosen_by["smooth_quant"] = f"default for {opts.method} (--smooth-quant 0 turns it off)"
    return opts.model_copy(update={"smooth_quant": alpha})


def _prepare(parent: Artifact, work: Path, opts: QuantizeOptions, calib_src) -> tuple[Path, dict, dict, list[str]]:
    """(the pre-processed (and smoothed) float model, what pre-processing did, --exclude's
    patterns resolved to nodes, the nodes kept in float)."""
    pre = work / "preprocessed.onnx"
    log.info("pre-processing %s", parent.model_path)
    pre_info = _preprocess(parent.model_path, pre)
    checkpoint()
    resolved = exclusions.resolve_preprocessed(pre, parent.model_path, tuple(opts.exclude)) if opts.exclude else {}
    excluded = exclusions.flatten(resolved)
    if opts.smooth_quant:  # adds a Mul per smoothed tensor and renames no node, so ``excluded`` still holds
        calib = itertools.islice(iter(calib_src), SMOOTH_SAMPLES)
        pre_info["smooth_quant"] = smoothing.smooth(pre, work / "smoothed.onnx", calib, opts.smooth_quant, excluded, opts.smooth_quant_min_ratio)
        pre = work / "smoothed.onnx"
    return pre, pre_info, resolved, excluded


def _runner(calib_src, cache: Path):
    """``run(method, src, dst, settings, excluded, only=None)``: one method run, with fresh
    calibration readers over ``calib_src`` (counted once) and ORT's calibration cache."""
    from edgedeploy.quantize.calibration import StreamingReader  # onnxruntime.quantization imports onnx

    total = _count(calib_src) if calib_src is not None else 0
    calibration = (lambda: StreamingReader(calib_src, total)) if calib_src is not None else None

    def run(name, src, dst, settings, excluded, only=None):
        ctx = methods.RunContext(excluded=list(excluded), only=only, calibration=calibration, cache=cache)
        return methods.get(name).run(src, dst, settings, ctx)

    return run


def _sample_sources(parent: Artifact, opts: QuantizeOptions, m, method_settings: dict, selects: bool):
    """(fidelity samples, calibration samples or None, selection samples), each read once so that
    wrong columns or an empty file exit 2 before any work; exit 2 when the method or SmoothQuant
    needs data. When a search selects on the data (an accuracy budget, int4's sensitivity
    ranking), --data (else --calib-data) is split: the search selects on its first --eval-samples
    rows (its fidelity on --calib-data's when given) and the fidelity of record is measured on the
    next --eval-samples rows, which the search never saw (each half of the file when it has fewer
    than twice as many). Without --data, fidelity on --calib-data starts after the rows
    calibration read."""
    calib_data, text_column, n = opts.calib_data, opts.text_column, opts.eval_samples
    needs_calibration = m.calibration_needed(method_settings)
    if needs_calibration and calib_data is None and not (m.calibration == "required" and opts.random_calibration):
        raise BadInput(needs_calibration)
    data = opts.eval_data or calib_data
    held, offset = n, (n if selects else 0)
    if selects and data is not None:  # split --data: halves when it has under 2n rows
        held = offset = selection_rows(data, _count(SampleSource(parent, data, text_column, limit=2 * n)), n)
    elif opts.eval_data is None and calib_data is not None and (needs_calibration or opts.smooth_quant):
        offset = _after_calibration(parent, calib_data, text_column, opts.calib_samples)
    eval_src = SampleSource(parent, data, text_column, limit=held, allow_random=True, offset=offset)
    if eval_src.kind != "random" and next(iter(eval_src), None) is None:
        raise BadInput(f"{data}: no rows after the first {offset} the search selects on; give more rows or a lower --eval-samples")
    tune_src = SampleSource(parent, calib_data or data, text_column, limit=offset or n, allow_random=True)
    if opts.smooth_quant and not m.smoothing:
        raise BadInput(f"--smooth-quant applies to {', '.join(x.name for x in methods.all_methods() if x.smoothing)}, not {m.name}")
    if opts.smooth_quant and calib_data is None and not (m.calibration == "required" and opts.random_calibration):
        raise BadInput("--smooth-quant measures activation ranges: give --calib-data FILE")
    calib_src = None
    if needs_calibration or opts.smooth_quant:
        calib_src = SampleSource(
            parent, calib_data, text_column, limit=opts.calib_samples, batch=1, allow_random=opts.random_calibration, pad_to_max=True
        )
        next(iter(calib_src))
    return eval_src, calib_src, tune_src


def _after_calibration(parent: Artifact, data: Path, text_column: str, calibrated: int) -> int:
    """Where fidelity on the calibration file starts: after the rows calibration read, when the
    file has more (else on those rows, said in the log)."""
    if _count(SampleSource(parent, data, text_column, limit=calibrated + 1)) > calibrated:
        return calibrated
    log.warning("note: %s has no rows beyond the %d calibration read: fidelity is measured on those rows (give --data)", data, calibrated)
    return 0


def _accuracy_search(parent: Artifact, opts: QuantizeOptions, pre: Path, dst: Path, method_settings, excluded, run, tune_src, work: Path) -> dict:
    """Keep the most sensitive nodes in float until the budget holds on the selection rows."""
    budget = Budget(opts.min_mean_cosine, opts.min_worst_cosine, opts.max_accuracy_drop)
    if opts.max_accuracy_drop is not None:
        budget.accuracy, budget.parent_accuracy = _task_accuracy(parent, opts.eval_data, opts.text_column, opts.label_column, tune_src.limit)
    search = accuracy_search(opts.method, pre, dst, method_settings, excluded, run, tune_src, parent.model_path, budget, work)
    search["selection"] = tune_src.describe()
    return search


def _check_held_out(search: dict, fid: dict, parent: Artifact, opts: QuantizeOptions, model: Path, held_src: SampleSource) -> None:
    """The budget, measured again on the held-out rows (the fidelity of record): a budget met on
    the selection rows only is a failed budget (exit 1, like any budget the search misses)."""
    budget = Budget(opts.min_mean_cosine, opts.min_worst_cosine, opts.max_accuracy_drop)
    held = {"mean_cosine": fid["mean_cosine"], "worst_cosine": worst_cosine(fid), "rows": fid["inputs"]}
    if opts.max_accuracy_drop is not None:
        budget.accuracy, budget.parent_accuracy = _task_accuracy(
            parent, opts.eval_data, opts.text_column, opts.label_column, held_src.limit, offset=held_src.offset
        )
        held["accuracy"] = budget.accuracy(model)
        held["accuracy_drop"] = budget.parent_accuracy - held["accuracy"]
        held["parent_accuracy"] = budget.parent_accuracy
    search["held_out"] = held
    if not budget.met(held):
        raise ValidationFailed(
            f"the accuracy budget holds on the {search['selection'].get('limit')} selection rows but not on the held-out rows: {budget.shortfall(held)}; "
            "nothing was published (more --eval-samples, or a looser budget)"
        )


def _task_accuracy(parent, eval_data, text_column, label_column, limit, offset: int = 0):
    """(accuracy function over model files, the parent's accuracy) on labeled eval data."""
    if eval_data is None:
        raise BadInput("--max-accuracy-drop needs labeled --data (with --label-column)")
    batches, labels = labeled_eval(parent, eval_data, text_column, label_column, limit, offset)
    fn = lambda path: accuracy(path, batches, labels)
    return fn, fn(parent.model_path)


def _preprocess(src: Path, dst: Path) -> dict:
    try:
        return preprocess(src, dst)
    except RuntimeError as exc:
        raise ValidationFailed(f"{src}: {exc}") from None


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
