"""Quantizing an artifact of several graphs (an encoder-decoder): the method runs on every
graph, and fidelity is measured through the generation loop (quality/seq2seq_fidelity.py).

The steps that calibrate on data or search node by node (static INT8, SmoothQuant, GPTQ,
accuracy budgets, sensitive-layer ranking, --exclude) work on one graph; for several they
exit 2 rather than quantize one graph and leave the others unchecked.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgedeploy.core.artifact import Artifact, finalize_manifest
from edgedeploy.core.atomic import checkpoint
from edgedeploy.core.derive import copy_companions, derive, derived_manifest
from edgedeploy.core.errors import BadInput, ValidationFailed
from edgedeploy.core.manifest import Fidelity, Quantization
from edgedeploy.data.samples import SampleSource
from edgedeploy.quality.seq2seq_fidelity import compare_seq2seq
from edgedeploy.quantize import methods
from edgedeploy.quantize.methods.registry import ENCODER_DECODER
from edgedeploy.quantize.preprocess import preprocess

log = logging.getLogger("edgedeploy")


def refuse_unsupported(opts, settings: dict) -> None:
    """Exit 2 for what works on one graph only."""
    if ENCODER_DECODER not in methods.get(opts.method).graphs:
        able = [m.name for m in methods.all_methods() if ENCODER_DECODER in m.graphs]
        raise BadInput(f"--method {opts.method} works on one graph; an encoder-decoder quantizes with {', '.join(able)}")
    given = [
        flag
        for flag, on in (
            ("--smooth-quant", opts.smooth_quant),
            ("--exclude", opts.exclude),
            ("--calib-data", opts.calib_data),
            ("an accuracy budget", opts.accuracy_aware()),
            ("--int4-algorithm gptq", opts.setting("int4_algorithm") == "gptq"),
            ("--int4-sensitive-8bit", opts.setting("int4_sensitive_8bit")),
        )
        if on
    ]
    if given:
        raise BadInput(f"{given[0]} works on one graph; an encoder-decoder's graphs are quantized alike and checked by generation")


def quantize_graphs(parent: Artifact, out: Path, opts, settings: dict, record: dict, force: bool) -> Artifact:
    """Every graph of ``parent`` through ``opts.method``; ``record`` is the quantization
    record so far (profile, chosen_by, options, notes)."""
    method = opts.method
    refuse_unsupported(opts, settings)
    if settings.get("int4_sensitive_8bit"):  # a default or a preset's, not a flag (refused above)
        settings["int4_sensitive_8bit"] = 0
        record["chosen_by"]["int4_sensitive_8bit"] = "encoder-decoder (the sensitivity ranking measures one graph)"
    samples, inputs = _samples(parent, opts)
    with derive(out, force) as (work, stage):
        used, pre_info = {}, {}
        for role, name in parent.graph_files.items():
            log.info("quantizing %s (%s, %s)", name, role, method)
            pre = work / f"{Path(name).stem}.pre.onnx"
            try:
                pre_info[role] = preprocess(parent.path / name, pre)
            except RuntimeError as exc:
                raise ValidationFailed(f"{parent.path / name}: {exc}") from None
            used[role] = methods.get(method).run(pre, stage / name, settings, methods.RunContext())
            checkpoint()
        log.info("measuring fidelity against the parent by generation on %s", inputs["source"])
        fid = compare_seq2seq(stage, parent.path, parent.graph_files, parent.manifest.start_token, parent.manifest.vocab_size, samples=samples)
        fid.update({"inputs": inputs, "reference": parent.digest})
        if not fid["finite"]:
            raise ValidationFailed(f"{method} model produced NaN or Inf in generation; quantize with another method")
        copy_companions(parent, stage)
        size = sum((stage / n).stat().st_size for n in parent.graph_files.values())
        parent_size = sum((parent.path / n).stat().st_size for n in parent.graph_files.values())
        quantization = Quantization(
            **record,
            method=method,
            settings=used["encoder"],
            graph_settings=used,
            preprocess=pre_info,
            model_bytes=size,
            parent_model_bytes=parent_size,
            compression_ratio=parent_size / size,
            warning="fidelity used random encoder inputs, not real data" if inputs["kind"] == "random" else None,
        )
        manifest = derived_manifest(parent, stage, f"quantize:{method}", quantization=quantization, fidelity=Fidelity.model_validate(fid))
        finalize_manifest(stage, manifest)
        checkpoint()
    return Artifact.load(out)


def _samples(parent: Artifact, opts):
    """(encoder feeds for fidelity or None for random ones, their description): rows of --data
    text, one encoder input each, when the encoder reads text."""
    if opts.eval_data is None:
        return None, {"source": "random encoder inputs", "kind": "random"}
    if "input_ids" not in parent.input_names:
        raise BadInput(f"{parent.path}: its encoder takes {parent.input_names[0]}, not text; leave --data out (fidelity on random inputs)")
    src = SampleSource(parent, opts.eval_data, opts.text_column, limit=opts.eval_samples, batch=1)
    next(iter(src))  # wrong columns or an empty file: exit 2 before any work
    return iter(src), src.describe()
