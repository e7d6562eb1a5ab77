"""Hugging Face models on the transformers 4 stack: optimum-onnx's exporter (optimum-onnx 0.1
caps transformers below 4.58; optimum 2.3 has no ONNX exporter). Imported only where
``huggingface.exporter_stack()`` found it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters import decoder, seq2seq


def detect_task(path: Path, config: dict) -> str:
    import transformers
    from optimum.exporters.tasks import TasksManager

    archs = config.get("architectures") or []
    for arch in archs:
        cls = getattr(transformers, arch, None)
        if cls is None:
            continue
        generation = _seq2seq_task(arch, config.get("model_type"))
        if generation:
            return generation
        try:
            task = TasksManager.infer_task_from_model(cls)
        except (KeyError, ValueError, RuntimeError):
            task = _auto_task(arch)
            if task is None:
                continue
        # Decoders export without KV-cache inputs unless asked (validation compares one forward
        # pass); encoder-decoders always with it, as three graphs (exporters/seq2seq.py).
        # A with-past task only where this model type has it: a CTC speech model (wav2vec2) is
        # automatic-speech-recognition without past, Whisper with it.
        base = task.removesuffix("-with-past")
        past = f"{base}-with-past"
        if seq2seq.is_seq2seq_task(past) and past in (_supported_tasks(config.get("model_type")) or {past}):
            return past
        return _only_task(config.get("model_type"), base)
    raise BadInput(f"{path}: cannot tell the task from config.json architectures {archs}; pass --task (e.g. feature-extraction, text-classification)")


def _auto_task(arch: str) -> str | None:
    """The task whose transformers auto class lists ``arch``: optimum's inference misses classes
    an auto mapping lists with another (``DeiTForImageClassification`` beside its with-teacher
    variant). Catch-all loaders (``AutoModel``) are left to optimum."""
    import transformers
    from optimum.exporters.tasks import TasksManager

    for task, loaders in TasksManager._TRANSFORMERS_TASKS_TO_MODEL_LOADERS.items():
        for loader in loaders if isinstance(loaders, tuple) else (loaders,):
            mapping = getattr(getattr(transformers, loader, None), "_model_mapping", None)
            if loader == "AutoModel" or mapping is None:
                continue
            for names in getattr(mapping, "_model_mapping", {}).values():
                if arch in (names if isinstance(names, (tuple, list)) else (names,)):
                    return task
    return None


def _supported_tasks(model_type) -> set[str] | None:
    """The tasks optimum exports ``model_type`` as; ``None`` when it has no table for the type."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers optimum's ONNX configs)
    from optimum.exporters.tasks import TasksManager

    try:
        return set(TasksManager.get_supported_tasks_for_model_type(str(model_type), exporter="onnx", library_name="transformers"))
    except (KeyError, ValueError):
        return None


def _only_task(model_type, task: str) -> str:
    """``task``, or the one task optimum exports this model type as when ``task`` is not it
    (optimum calls ``VitsModel`` feature-extraction but exports it as text-to-audio only)."""
    from optimum.exporters.tasks import TasksManager

    try:
        supported = TasksManager.get_supported_tasks_for_model_type(str(model_type), exporter="onnx", library_name="transformers")
    except (KeyError, ValueError):
        return task
    return next(iter(supported)) if task not in supported and len(supported) == 1 else task


def _seq2seq_task(arch: str, model_type) -> str | None:
    """The seq2seq task of a generation class (``BartForConditionalGeneration`` is also a masked
    LM, which optimum's inference picks first) where optimum exports it with past."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers optimum's ONNX configs)
    from optimum.exporters.tasks import TasksManager
    from transformers.models.auto import modeling_auto as auto

    for task, names in (
        ("text2text-generation-with-past", auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES),
        ("automatic-speech-recognition-with-past", auto.MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES),
    ):
        if arch in names.values():
            try:
                supported = TasksManager.get_supported_tasks_for_model_type(str(model_type), exporter="onnx", library_name="transformers")
            except (KeyError, ValueError):
                return None
            return task if task in supported else None
    return None


def needs_past(config: dict, task: str) -> bool:
    """Whether ``task`` names an encoder-decoder's generation without the KV cache optimum exports it with."""
    past = f"{task}-with-past"
    return seq2seq.is_seq2seq_task(past) and past in (_supported_tasks(config.get("model_type")) or {past})


def check_task(path: Path, model_type, task: str) -> str:
    """``task`` (a synonym mapped to optimum's name) where optimum exports this model type as it,
    or exit 2 saying what it exports it as; with past, only the tasks validated by generation."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers optimum's ONNX configs)
    from optimum.exporters.tasks import TasksManager

    past = task.endswith("-with-past")
    task = f"{TasksManager.map_from_synonym(task.removesuffix('-with-past'))}{'-with-past' if past else ''}"
    try:
        supported = TasksManager.get_supported_tasks_for_model_type(str(model_type), exporter="onnx", library_name="transformers")
    except (KeyError, ValueError):
        if past:
            raise BadInput(f"{path}: model type {model_type!r} has no ONNX export in optimum, with or without past") from None
        return task  # a model type optimum has no table for: its exporter says what it can do
    if task not in supported:
        raise BadInput(f"{path}: optimum cannot export {model_type!r} as {task}; it can: {', '.join(sorted(supported))} (pass --task)")
    if past and task not in decoder.GENERATION_TASKS + seq2seq.SEQ2SEQ_TASKS:  # validated by generation; other with-past graphs are not
        raise BadInput(
            f"{path}: {task} is not supported; with past, decoders export as {decoder.GENERATION_TASKS[0]} and encoder-decoders "
            f"as {' or '.join(seq2seq.SEQ2SEQ_TASKS)}"
        )
    return task


def load_model(path: Path, task: str, trust_remote_code: bool = False):
    from optimum.exporters.tasks import TasksManager

    try:
        model = TasksManager.get_model_from_task(
            task, str(path), framework="pt", library_name="transformers", local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{path}: could not load as a Hugging Face {task} model: {msg[:240]}") from None
    return model.eval()


def onnx_config_for(model, task: str, **variant):
    """optimum's OnnxConfig for ``model`` as ``task`` (``variant=...`` where it has several): its
    dummy inputs, output names and patcher."""
    from optimum.exporters.tasks import TasksManager

    ctor = TasksManager.get_exporter_config_constructor("onnx", model=model, task=task, library_name="transformers")
    return ctor(model.config, **variant)


MONOLITH_NOTE = "monolith: one model.onnx (optimum's default splits it into two graphs); the image is encoded on every call"


def _one_graph_variant(model, task: str, onnx_config) -> dict:
    """The keywords that make optimum write one graph where its default variant writes several
    (SAM splits a vision encoder from a prompt-encoder/mask-decoder), or none."""
    variants = getattr(onnx_config, "VARIANTS", None) or {}
    if "monolith" not in variants or getattr(onnx_config, "variant", "monolith") == "monolith":
        return {}
    # _variant alone gives SAM's monolith a default (split-decoder) config: pass the config too
    return {"custom_onnx_configs": {"model": onnx_config_for(model, task, variant="monolith")}, "_variant": "monolith"}


def dummy_cases(onnx_config, seed: int = 0, shapes=((1, 16), (3, 7))) -> list[dict]:
    """Inputs from optimum's per-architecture dummy generators at two batch/sequence sizes."""
    import torch

    cases = []
    for i, (batch, seq) in enumerate(shapes):
        torch.manual_seed(seed + i)
        np.random.seed(seed + i)
        dummy = onnx_config.generate_dummy_inputs(framework="pt", batch_size=batch, sequence_length=seq)
        cases.append({k: v.numpy() for k, v in dummy.items() if isinstance(v, torch.Tensor)})
    return cases


def torch_runner(model, onnx_config=None):
    """feeds -> {ONNX output name: PyTorch's value}, named as optimum's own validation names them:
    the model patched as for export, tuples flattened (``present.0.key``), names mapped."""
    import contextlib

    import torch

    def run(feeds):
        patch = onnx_config.patch_model_for_export(model) if onnx_config is not None else contextlib.nullcontext()
        with torch.inference_mode(), patch:
            out = model(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
        items = out.items() if hasattr(out, "items") else enumerate(out)
        named = {}
        for k, v in items:
            k = "present" if k == "past_key_values" else k
            name = onnx_config.torch_to_onnx_output_map.get(k, k) if onnx_config is not None and isinstance(k, str) else k
            if isinstance(v, (list, tuple)) and onnx_config is not None and isinstance(name, str):
                named.update(onnx_config.flatten_output_collection_property(name, v))
            elif isinstance(v, torch.Tensor):
                named[name] = v
        return {k: v.detach().numpy() for k, v in named.items() if isinstance(v, torch.Tensor)}

    return run


def _quiet_libraries() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    try:
        from optimum.utils import logging as optimum_logging

        optimum_logging.set_verbosity_error()
    except ImportError:
        pass


def export(path: Path, model, stage: Path, task: str, opset: int | None, preprocessor_files=()) -> dict:
    """optimum's export of ``model`` into ``stage``, kept to the graphs edgedeploy artifacts hold."""
    from optimum.exporters.onnx import onnx_export_from_model

    is_s2s = seq2seq.is_seq2seq_task(task)
    by_generation = decoder.is_decoder_task(task) or is_s2s
    config_onnx = None if by_generation else onnx_config_for(model, task)  # those validate by generation
    one_graph = {} if by_generation else _one_graph_variant(model, task, config_onnx)
    if one_graph:
        config_onnx = one_graph["custom_onnx_configs"]["model"]
    _quiet_libraries()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # seq2seq: keep optimum's three graphs as they are (no merged decoder with an If node)
        onnx_export_from_model(model, str(stage), opset=opset, task=task, do_validation=False, no_post_process=is_s2s, **one_graph)
    graphs = tuple(seq2seq.GRAPH_FILES.values()) if is_s2s else ("model.onnx",)
    written = sorted(p.name for p in stage.glob("*.onnx"))
    keep = {*graphs, *(g + "_data" for g in graphs), "config.json", *preprocessor_files}
    for extra in stage.iterdir():  # keep the artifact to the model, config and tokenizer
        if extra.is_file() and extra.name not in keep:
            extra.unlink()
    missing = [g for g in graphs if not (stage / g).is_file()]
    if missing and written:  # a graph set of another layout (SAM's split variant, were it asked for)
        raise BadInput(
            f"{path}: optimum exports {model.config.model_type!r} ({task}) as {', '.join(written)}: graphs that are neither one "
            f"model nor an encoder-decoder, which edgedeploy artifacts do not hold yet"
        )
    if missing:
        raise BadInput(f"{path}: optimum's {task} export wrote no {missing[0]}; this architecture does not export as {task}")
    return {
        "torch_fn": torch_runner(model, config_onnx),
        "cases": [] if config_onnx is None else dummy_cases(config_onnx),
        **({"variant": MONOLITH_NOTE} if one_graph else {}),
    }
