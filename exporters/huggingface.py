"""Hugging Face model directories to ONNX (offline only), on either stack:
- transformers 5: transformers' own exporter (``exporters/transformers_onnx.py``);
- transformers 4: optimum-onnx's (optimum-onnx 0.1 caps transformers below 4.58).

Both write the same graphs (names, dims, one graph or three), which are validated the same way.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from importlib import metadata
from pathlib import Path

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters import decoder, optimum_onnx, seq2seq, transformers_onnx
from edgedeploy.exporters.safe_load import check_not_lfs_pointer, check_weight_file, weight_files

PREPROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "added_tokens.json",
    "preprocessor_config.json",
)
# onnxruntime.transformers optimizer model types for the families we export
OPTIMIZER_TYPES = {
    "bert": "bert",
    "distilbert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "mpnet": "bert",
    "gpt2": "gpt2",
    "vit": "vit",
}


def is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def read_config(path: Path) -> dict:
    cfg_path = path / "config.json"
    check_not_lfs_pointer(cfg_path)
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInput(f"{cfg_path}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(cfg, dict):
        raise BadInput(f"{cfg_path}: expected a JSON object (a model config), got {type(cfg).__name__}")
    return cfg


OPTIMUM, TRANSFORMERS = "optimum-onnx", "transformers.exporters"


def exporter_stack() -> str:
    """The exporter the installed stack has: transformers' own on transformers 5, optimum-onnx on
    transformers 4 (a missing optimum is the export extra's, exit 3)."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return TRANSFORMERS
    if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("optimum.exporters.onnx") is None:
        raise ModuleNotFoundError("optimum-onnx exports on transformers 4", name="optimum")
    return OPTIMUM


def exporter_versions(stack: str) -> dict:
    """The versions of what exported, for the manifest."""
    names = ("torch", "transformers", "onnx", "onnxscript") + (("optimum", "optimum-onnx") if stack == OPTIMUM else ())
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _backend(stack: str):
    return transformers_onnx if stack == TRANSFORMERS else optimum_onnx


def detect_task(path: Path, config: dict) -> str:
    return _backend(exporter_stack()).detect_task(path, config)


def check_task(path: Path, model_type, task: str) -> str:
    """``task`` (synonyms mapped) where the installed exporter builds it for this model type, or exit 2 saying what it builds."""
    return _backend(exporter_stack()).check_task(path, model_type, task)


def load_model(path: Path, task: str, trust_remote_code: bool = False):
    for w in weight_files(path):
        check_weight_file(w)
    return _backend(exporter_stack()).load_model(path, task, trust_remote_code)


def generates(source, task: str | None) -> bool:
    """Whether an export of ``source`` (as ``task``, or as the task detected for a local model
    directory) is validated by generation rather than on samples."""
    if task:
        return decoder.is_decoder_task(task) or seq2seq.is_seq2seq_task(task)
    path = Path(str(source))
    if not is_hf_dir(path):
        return False
    try:
        return seq2seq.is_seq2seq_task(detect_task(path, read_config(path)))
    except BadInput:
        return False


def export(path: Path, stage: Path, task: str | None, opset: int | None, trust_remote_code: bool = False) -> dict:
    """Export into ``stage`` with the installed stack's exporter; return what validation and the manifest need."""
    import torch  # noqa: F401  (first: without the export extra this is exit 3 naming it, not transformers' own ImportError)

    stack = exporter_stack()
    config = read_config(path)
    task = check_task(path, config.get("model_type"), task or detect_task(path, config))
    if _backend(stack).needs_past(config, task):
        raise BadInput(f"{path}: encoder-decoder models export with their KV cache: use --task {task}-with-past")
    model = load_model(path, task, trust_remote_code)
    if stack == TRANSFORMERS:
        info = _export_transformers(model, stage, task, opset)
    else:
        info = optimum_onnx.export(path, model, stage, task, opset, PREPROCESSOR_FILES)
    for name in PREPROCESSOR_FILES:
        if (path / name).is_file() and not (stage / name).exists():
            shutil.copy2(path / name, stage / name)
    if not (stage / "config.json").exists():
        model.config.to_json_file(str(stage / "config.json"))
    is_s2s = seq2seq.is_seq2seq_task(task)
    return {
        "task": task,
        "model_type": config.get("model_type"),
        "family": "transformer",
        "decoder": model if decoder.is_decoder_task(task) else None,  # validated by generated tokens (exporters/decoder.py)
        "seq2seq": model if is_s2s else None,  # three graphs, validated by exporters/seq2seq.py
        "config": model.config,
        "exporter": stack,
        "versions": exporter_versions(stack),
        **info,
    }


def _export_transformers(model, stage: Path, task: str, opset: int | None) -> dict:
    try:
        got = transformers_onnx.export(model, task, stage, opset)
    except BadInput:
        raise
    except Exception as exc:  # the tracer's or converter's own failure: this architecture does not export here
        msg = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise BadInput(f"transformers' exporter cannot export {type(model).__name__} as {task}: {msg[:240]}") from None
    return {"torch_fn": got["torch_fn"], "cases": got["cases"]}


def optimize(stage: Path, config, model_type: str | None, without=()) -> dict:
    """onnxruntime.transformers fusions in place, less those in ``without`` (FusionOptions'
    ``enable_<name>``); returns what was applied."""
    kind = OPTIMIZER_TYPES.get(model_type or "")
    if kind is None:
        return {"applied": False, "reason": f"no onnxruntime.transformers fusions for model type {model_type!r}"}
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    num_heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 0) or 0
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0) or 0
    fusions = FusionOptions(kind)
    for name in without:
        setattr(fusions, f"enable_{name}", False)
    if "skip_layer_norm" in without:  # the bias variant would fuse the same Add + LayerNormalization
        fusions.enable_bias_skip_layer_norm = False
    opt = optimize_model(
        str(stage / "model.onnx"), model_type=kind, num_heads=num_heads, hidden_size=hidden, opt_level=0, optimization_options=fusions
    )
    fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(stage / "model.onnx"))
    return {"applied": True, "optimizer_model_type": kind, "fused_operators": fused, "left_out": sorted(without)}
