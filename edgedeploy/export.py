"""``edgedeploy export``: SOURCE -> validated ONNX artifact (library API behind the CLI)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgedeploy.compress.reference import materialize
from edgedeploy.core.artifact import Artifact, finalize_manifest, is_artifact
from edgedeploy.core.atomic import checkpoint, refuse_inside, staged_directory
from edgedeploy.core.errors import BadInput, ValidationFailed
from edgedeploy.core.manifest import ExportRecord, Generation, Lineage, Manifest, SourceInfo, Validation
from edgedeploy.core.options import Options, coerce
from edgedeploy.core.signature import graph_entries, onnx_signature
from edgedeploy.core.sources import resolve
from edgedeploy.data.datasets import read_texts
from edgedeploy.exporters import registry
from edgedeploy.exporters.decoder import NEW_TOKENS, PROMPTS, text_config, validate_decoder
from edgedeploy.exporters.huggingface import optimize as hf_optimize
from edgedeploy.exporters.seq2seq import GRAPH_FILES, start_token, validate_seq2seq
from edgedeploy.exporters.validate import DEFAULT_TOLERANCES, validate

log = logging.getLogger("edgedeploy")


def _sample_cases(source_path: Path, sample_data: Path, text_column: str, limit: int = 16, batch: int = 8) -> list[dict]:
    suffix = Path(sample_data).suffix
    if suffix == ".npz":
        import numpy as np

        data = np.load(sample_data, allow_pickle=False)
        return [{k: data[k] for k in data.files}]
    from transformers import AutoTokenizer

    texts = read_texts(sample_data, text_column, limit)
    tok = AutoTokenizer.from_pretrained(str(source_path), local_files_only=True)
    cases = []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i : i + batch], padding=True, truncation=True, max_length=128, return_tensors="np")
        cases.append({k: v.astype("int64") for k, v in enc.items()})
    return cases


Fusion = Literal["skip_layer_norm", "bias_gelu", "gelu", "attention", "embed_layer_norm", "layer_norm"]


class ExportSettings(Options):
    """The export settings a recipe may set (its ``export:`` section)."""

    task: str | None = Field(None, description="Hugging Face task (auto-detected from config.json when omitted).")
    opset: int | None = Field(None, ge=7, le=30, description="ONNX opset (exporter default when omitted).")
    optimize: bool = Field(False, description="Apply onnxruntime.transformers graph fusions (transformer families).")
    no_fusion: list[Fusion] = Field(
        default_factory=list,
        description="With --optimize: leave this fusion out (repeatable). skip_layer_norm keeps LayerNormalization + Add, which "
        "ONNX Runtime's CPU kernels run faster than SkipLayerNormalization (edgedeploy tune measures it).",
    )
    atol: float | None = Field(None, ge=0, description="Absolute tolerance for validation (family default).")
    rtol: float | None = Field(None, ge=0, description="Relative tolerance for validation (family default).")
    revision: str | None = Field(None, min_length=1, description="Hub revision (branch, tag or commit) when SOURCE is a Hub id ORG/NAME.")


class ExportOptions(ExportSettings):
    """Every setting of ``edgedeploy export``."""

    factory: str | None = Field(None, description="package.module:callable returning a torch.nn.Module.")
    weights: Path | None = Field(None, description="Weights for --factory (.safetensors preferred; .pt loads with weights_only=True).")
    input: list[str] = Field(
        default_factory=list, description="Input spec name:dtype:dims, dims may be symbolic: input:float32:batch,3,224,224. Repeatable."
    )
    eval_data: Path | None = Field(
        None, description="Validate on real samples: TSV/CSV/JSONL text or .npz of inputs.", json_schema_extra={"flag": "data"}
    )
    text_column: str = Field("text", min_length=1, description="Text column of TSV/CSV/JSONL data.")
    trust_pickle: bool = Field(False, description="Allow loading arbitrary pickled objects (only for files you trust; never from a recipe).")
    trust_remote_code: bool = Field(
        False, description="Run the model repository's own Python code (auto_map models; only for code you trust; never from a recipe)."
    )


def export(source: str | None, out: Path, *, options: ExportOptions | None = None, force: bool = False, **settings) -> Artifact:
    """Export ``source`` to a validated artifact at ``out``. Settings are an ``ExportOptions``
    or its fields as keyword arguments."""

    opts = options if options is not None else coerce(ExportOptions, settings, "export")
    if opts.no_fusion and not opts.optimize:
        raise BadInput("--no-fusion leaves a fusion out of --optimize; give --optimize too")
    src = resolve(source, opts.factory, opts.revision)
    if src.path is not None and src.kind != "reference":
        refuse_inside(out, src.path, "the source model")
    src = materialize(src)  # a reference classifier is built here, on first use
    t0 = time.perf_counter()
    with staged_directory(out, force=force, is_artifact=is_artifact) as stage:
        log.info("exporting %s (%s)", src.name, src.kind)
        info = registry.export(
            src,
            stage,
            task=opts.task,
            opset=opts.opset,
            weights=opts.weights,
            input_specs=tuple(opts.input),
            trust_pickle=opts.trust_pickle,
            trust_remote_code=opts.trust_remote_code,
        )
        checkpoint()
        opt = _optimize(stage, src, info, opts)
        validation, generation, graph_files = _validate(stage, src, info, opts, out)
        checkpoint()
        for name in graph_files.values():
            _check_onnx(stage / name)
        model_file = next(iter(graph_files.values()))
        inputs, outputs, opset_used, params = onnx_signature(stage / model_file)
        manifest = Manifest(
            source=SourceInfo(
                **src.as_dict(),
                weights=str(Path(opts.weights).resolve()) if opts.weights else None,
                task=info.get("task"),
                model_type=info.get("model_type"),
                family=info["family"],
            ),
            lineage=Lineage(step="export"),
            model_file=model_file,
            export=_export_record(info, opt, round(time.perf_counter() - t0, 2), opts),
            opset=opset_used,
            inputs=inputs,
            outputs=outputs,
            parameters=params,
            validation=validation,
        )
        _add_generation(manifest, stage, info, graph_files, generation)
        finalize_manifest(stage, manifest)
        checkpoint()
    return Artifact.load(out)


def _export_record(info: dict, opt: dict, seconds: float, opts: ExportOptions) -> ExportRecord:
    """Which exporter ran (and which failed first), with its versions, the fusions and the options."""
    return ExportRecord(
        exporter=info["exporter"],
        versions=info.get("versions", {}),
        variant=info.get("variant") or None,
        attempts_failed=info.get("exporter_attempts", []),
        optimize=opt,
        seconds=seconds,
        options=opts.recorded(),
    )


def _optimize(stage: Path, src, info: dict, opts: ExportOptions) -> dict:
    """--optimize: onnxruntime.transformers fusions on the exported graph (one graph, Hugging Face sources)."""
    if not opts.optimize:
        return {"applied": False, "reason": "not requested"}
    if info.get("seq2seq") is not None:
        raise BadInput("--optimize fuses one graph; an encoder-decoder export has three (leave --optimize out)")
    if src.kind != "huggingface":
        raise BadInput("--optimize applies onnxruntime.transformers fusions and needs a Hugging Face transformer source")
    opt = hf_optimize(stage, info["config"], info.get("model_type"), opts.no_fusion)
    log.info("optimize: %s", opt)
    checkpoint()
    return opt


def _validate(stage: Path, src, info: dict, opts: ExportOptions, out: Path) -> tuple[Validation, dict | None, dict]:
    """(the validation record, the generation record or None, the graph files): outputs against
    PyTorch at two shapes (or on --data), greedy tokens for generation; exit 4 when they differ."""
    s2s, sample_data = info.get("seq2seq"), opts.eval_data
    tol = DEFAULT_TOLERANCES[info["family"]]
    atol = tol["atol"] if opts.atol is None else opts.atol
    rtol = tol["rtol"] if opts.rtol is None else opts.rtol
    cases = info["cases"]
    if sample_data is not None:
        if src.kind != "huggingface" and Path(sample_data).suffix != ".npz":
            raise BadInput(f"{sample_data}: text samples need a Hugging Face source with a tokenizer; give an .npz of inputs")
        cases = _sample_cases(src.path, sample_data, opts.text_column)
    generation = None
    if (info.get("decoder") is not None or s2s is not None) and sample_data is not None:
        raise BadInput("--data validates encoders on real samples; a decoder is validated on generated tokens (leave --data out)")
    graph_files = GRAPH_FILES if s2s is not None else {"model": "model.onnx"}
    if info.get("decoder") is not None:
        result, generation = validate_decoder(stage / "model.onnx", info["decoder"], atol, rtol)
    elif s2s is not None:
        result, generation = validate_seq2seq(stage, s2s, atol, rtol)
    else:
        result = validate(stage / "model.onnx", info["torch_fn"], cases, atol, rtol)
    validation = result.as_dict()
    validation["inputs_from"] = str(sample_data) if sample_data else "generated from the signature (two batch/sequence sizes)"
    if generation is not None:
        sizes = " and ".join(map(str, PROMPTS))
        what = f"encoder inputs (text: {sizes} tokens)" if s2s is not None else f"prompts of {sizes} tokens"
        validation["inputs_from"] = f"random {what}; greedy generation of {NEW_TOKENS} tokens"
    _refuse_failed(result, generation, atol, rtol, out)
    if generation is not None:
        validation["generation"] = generation
    return Validation.model_validate(validation), generation, graph_files


def _refuse_failed(result, generation: dict | None, atol: float, rtol: float, out: Path) -> None:
    if not result.passed and result.unstable is not None:
        u = result.unstable
        how = "in shape" if u.max_abs_diff == float("inf") else f"by up to {u.max_abs_diff:.3g}"
        raise ValidationFailed(
            f"validation failed: the PyTorch model is not deterministic (two runs on the same inputs differ {how} in {u.name!r}: "
            f"it samples at inference), so its export cannot be checked against it; nothing was published to {out}"
        )
    if not result.passed:
        worst = result.worst()
        raise ValidationFailed(
            f"validation failed: output {worst.name!r} differs from PyTorch by up to {worst.max_abs_diff:.3g} "
            f"(atol {atol:g}, rtol {rtol:g}); nothing was published to {out}"
        )
    bad = next((c for c in generation["cases"] if not c["match"]), None) if generation is not None else None
    if bad:
        raise ValidationFailed(
            f"validation failed: greedy generation through the ONNX KV cache differs from PyTorch's at new token "
            f"{bad['first_difference']} ({_prompt(bad)}); nothing was published to {out}"
        )


def _add_generation(manifest: Manifest, stage: Path, info: dict, graph_files: dict, generation: dict | None) -> None:
    """An encoder-decoder's graph list, the generation record and the vocabulary size."""
    s2s = info.get("seq2seq")
    if s2s is not None:
        manifest.graphs, manifest.parameters = graph_entries(stage, graph_files)
    text = text_config(info["config"]) if info.get("config") is not None else None  # a vision-language model's nests it
    if generation is not None:
        manifest.generation = _generation(text, manifest, s2s is not None)
    if "vocab_size" in info:
        manifest.vocab_size = info["vocab_size"]
    elif getattr(text, "vocab_size", None):
        manifest.vocab_size = int(text.vocab_size)


def _prompt(case: dict) -> str:
    return f"prompt of {case['prompt_tokens']} tokens" if case.get("prompt_tokens") else f"encoder inputs {case.get('encoder_inputs')}"


def _generation(cfg, manifest: Manifest, seq2seq: bool) -> Generation:
    """What generation needs to know: the KV cache's layers, positions, end and start tokens."""
    past = manifest.graph("decoder-with-past").inputs if seq2seq else manifest.inputs
    key = ".decoder.key" if seq2seq else ".key"
    positions = ("max_target_positions", "max_position_embeddings", "n_positions") if seq2seq else ("max_position_embeddings", "n_positions")
    return Generation(
        layers=sum(1 for i in past if i.name.startswith("past_key_values.") and i.name.endswith(key)),
        max_positions=next((getattr(cfg, p) for p in positions if isinstance(getattr(cfg, p, None), int)), None),
        eos_token_id=getattr(cfg, "eos_token_id", None),
        architecture="encoder-decoder" if seq2seq else None,
        decoder_start_token_id=start_token(cfg) if seq2seq else None,
    )


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ValidationFailed(f"{path.name}: onnx.checker rejected the exported model: {str(exc).splitlines()[0][:240]}") from None
