"""Hugging Face models on the transformers 5 stack: transformers' own ONNX exporter.

optimum-onnx (the transformers 4 exporter) caps transformers below 4.58. On transformers 5,
``transformers.exporters.OnnxExporter`` traces with ``torch.export`` and converts with
``torch.onnx`` (its patches make T5's reshapes and other ops convertible). It is given small
wrapper modules whose inputs and outputs are the graphs edgedeploy's runtime already reads, the
names and dims optimum writes (``past_key_values.<i>.key`` in, ``present.<i>.key`` out,
``batch_size``/``sequence_length``), so an artifact is the same whichever stack exported it:
- one graph for encoders, classifiers, vision and CTC speech models (``model.onnx``);
- a decoder with its KV cache in and out as flat tensors (``text-generation-with-past``): the
  wrapper builds the cache object inside the traced graph;
- an encoder-decoder as three graphs (``encoder_model.onnx``, ``decoder_model.onnx``,
  ``decoder_with_past_model.onnx``), as ``exporters/seq2seq.py`` validates them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters import decoder, seq2seq, transformers_seq2seq
from edgedeploy.exporters.encoder_parts import from_pretrained  # (a pruned encoder reloads through it)
from edgedeploy.exporters.onnx_trace import (
    PAST,
    SEQ,
    TRACE,
    B,
    cache_kw,
    export_graph,
    flat_cache,
    forward_params,
    index,
    pairs,
    quiet,
    text_inputs,
    wrapper,
)

# task -> the transformers auto class that loads it and the outputs the graph returns
TASKS = {
    "feature-extraction": ("AutoModel", ("last_hidden_state",)),
    "text-classification": ("AutoModelForSequenceClassification", ("logits",)),
    "token-classification": ("AutoModelForTokenClassification", ("logits",)),
    "question-answering": ("AutoModelForQuestionAnswering", ("start_logits", "end_logits")),
    "fill-mask": ("AutoModelForMaskedLM", ("logits",)),
    "multiple-choice": ("AutoModelForMultipleChoice", ("logits",)),
    "image-classification": ("AutoModelForImageClassification", ("logits",)),
    "automatic-speech-recognition": ("AutoModelForCTC", ("logits",)),
    "audio-classification": ("AutoModelForAudioClassification", ("logits",)),
    "mask-generation": ("AutoModel", ("iou_scores", "pred_masks")),
    "text-generation": ("AutoModelForCausalLM", ("logits",)),
    "text-generation-with-past": ("AutoModelForCausalLM", ("logits",)),
    "text2text-generation-with-past": ("AutoModelForSeq2SeqLM", ()),
    "automatic-speech-recognition-with-past": ("AutoModelForSpeechSeq2Seq", ()),
}
# detection order: generation first (BART's generation class is also a masked LM), the plain
# backbone last; a decoder is detected without past (validated on one forward pass) unless asked
DETECT = (
    ("text2text-generation-with-past", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("automatic-speech-recognition-with-past", "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES"),
    (
        "image-text-to-text",
        "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
    ),  # detected to be refused: --task text-generation-with-past exports its text path
    ("text-generation", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("automatic-speech-recognition", "MODEL_FOR_CTC_MAPPING_NAMES"),
    ("text-classification", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("token-classification", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"),
    ("question-answering", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
    ("multiple-choice", "MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES"),
    ("image-classification", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"),
    ("audio-classification", "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES"),
    ("fill-mask", "MODEL_FOR_MASKED_LM_MAPPING_NAMES"),
    ("mask-generation", "MODEL_FOR_MASK_GENERATION_MAPPING_NAMES"),
    ("feature-extraction", "MODEL_MAPPING_NAMES"),
)
NO_PAST_INPUTS = ("input_ids", "attention_mask")  # a decoder exported without its cache
SYNONYMS = {
    "sequence-classification": "text-classification",
    "masked-lm": "fill-mask",
    "causal-lm": "text-generation",
    "default": "feature-extraction",
}


def detect_task(path: Path, config: dict) -> str:
    """The task of the first ``architectures`` class that a transformers auto class lists."""
    from transformers.models.auto import modeling_auto as auto

    archs = config.get("architectures") or []
    for arch in archs:
        for task, table in DETECT:
            names = getattr(auto, table, {}).values()
            if any(arch == n or (isinstance(n, (tuple, list)) and arch in n) for n in names):
                return task
    raise BadInput(f"{path}: cannot tell the task from config.json architectures {archs}; pass --task (e.g. feature-extraction, text-classification)")


def check_task(path: Path, model_type, task: str) -> str:
    """``task`` (synonyms mapped) where this exporter builds it, or exit 2 listing what it builds."""
    task = SYNONYMS.get(task, task)
    if task not in TASKS and not seq2seq.is_seq2seq_task(f"{task}-with-past"):  # (the caller asks for with-past)
        raise BadInput(
            f"{path}: the transformers 5 exporter cannot export {model_type!r} as {task}; it exports: {', '.join(sorted(TASKS))} (pass --task)"
        )
    return task


def needs_past(config: dict, task: str) -> bool:
    """Whether ``task`` names an encoder-decoder's generation without its KV cache (which it always exports with)."""
    past = f"{task}-with-past"
    if not seq2seq.is_seq2seq_task(past):
        return False
    try:
        return detect_task(Path("."), config) == past
    except BadInput:
        return False


def load_model(path: Path, task: str, trust_remote_code: bool = False):
    import transformers

    quiet()
    loader = getattr(transformers, TASKS[task][0])
    try:
        model = from_pretrained(loader, path, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{path}: could not load as a Hugging Face {task} model: {msg[:240]}") from None
    return model.eval()


# -- sample inputs ----------------------------------------------------------------------------


def _single_inputs(model, batch: int, seq: int, seed: int) -> tuple[dict, dict]:
    """(inputs, their dynamic axes by name) for a one-graph model, by what its forward takes."""
    import torch

    rng = np.random.default_rng(seed)
    params, cfg = forward_params(model), model.config
    if "pixel_values" in params and "input_ids" in params:  # two towers (CLIP-like): text and image together
        text, text_axes = _single_inputs_text(model, batch, seq, rng)
        image, image_axes = _image_inputs(model, batch, rng)
        return {**text, **image}, {**text_axes, **image_axes}
    if "pixel_values" in params:
        image, image_axes = _image_inputs(model, batch, rng)
        if "input_points" not in params:
            return image, image_axes
        # a promptable segmenter (SAM): point prompts, 3 groups of 2 points (the first case), else 2 of 3
        groups, points = (3, 2) if seed == 0 else (2, 3)
        dims = {0: B, 1: "point_batch_size", 2: "nb_points_per_image"}
        size = image["pixel_values"].shape[-1]
        feeds = {
            **image,
            "input_points": torch.from_numpy((rng.random((batch, groups, points, 2)) * size).astype(np.float32)),
            "input_labels": torch.ones(batch, groups, points, dtype=torch.int64),
        }
        return feeds, {"pixel_values": {0: B}, "input_points": dims, "input_labels": dims}
    if "input_values" in params and getattr(cfg, "num_mel_bins", None) and getattr(cfg, "max_length", None):  # a spectrogram (AST)
        frames = torch.from_numpy(rng.standard_normal((batch, cfg.max_length, cfg.num_mel_bins)).astype(np.float32))
        return {"input_values": frames}, {"input_values": {0: B}}
    if "input_values" in params:
        audio = torch.from_numpy(rng.standard_normal((batch, 1600 + 160 * seq)).astype(np.float32))
        return {"input_values": audio}, {"input_values": {0: B, 1: SEQ}}
    if "input_ids" not in params:
        raise BadInput(
            f"{type(model).__name__} takes neither input_ids, pixel_values nor input_values; the transformers 5 exporter cannot build its inputs"
        )
    return _single_inputs_text(model, batch, seq, rng)


def _single_inputs_text(model, batch: int, seq: int, rng) -> tuple[dict, dict]:
    feeds = text_inputs(model, batch, seq, rng)
    return feeds, {key: {0: B, 1: SEQ} for key in feeds}


def _image_inputs(model, batch: int, rng) -> tuple[dict, dict]:
    import torch

    vision = getattr(model.config, "vision_config", None) or model.config  # (SAM, CLIP: the vision tower's settings)
    size = getattr(model.config, "image_size", None) or getattr(vision, "image_size", 224)
    size = size if isinstance(size, (list, tuple)) else (size, size)
    pixels = rng.standard_normal((batch, getattr(vision, "num_channels", 3), *size[-2:])).astype(np.float32)
    return {"pixel_values": torch.from_numpy(pixels)}, {"pixel_values": {0: B}}


# -- the wrappers: flat named tensors in, flat named tensors out ---------------------------------


def _forward(model, feeds):
    """One forward pass without a KV cache, as the one-graph export traces it."""
    return model(**feeds, return_dict=True, **({"use_cache": False} if "use_cache" in forward_params(model) else {}))


def _single_forward(outputs):
    def forward(model, feeds):
        out = _forward(model, feeds)
        return {name: out[name] for name in outputs}

    return forward


def _decoder_forward(model, feeds):
    from transformers import DynamicCache

    kw = cache_kw(model)
    past = [feeds[k] for k in sorted((k for k in feeds if k.startswith("past_")), key=index)]
    extra = {k: feeds[k] for k in ("attention_mask", "position_ids") if k in feeds}
    out = model(input_ids=feeds["input_ids"], **extra, **{kw: DynamicCache(pairs(past), config=model.config)}, use_cache=True, return_dict=True)
    return {"logits": out.logits, **{f"present_{i}": t for i, t in enumerate(flat_cache(out[kw]))}}


# -- export ----------------------------------------------------------------------------------


def _outputs(model, task: str, feeds: dict) -> tuple:
    """The task's outputs where the model returns them; else every tensor it returns (a
    feature extractor without ``last_hidden_state``: MaskFormer, CLIP-like towers)."""
    import torch

    want = TASKS[task][1]
    with torch.no_grad():
        out = _forward(model, feeds)
    if all(isinstance(out.get(name), torch.Tensor) for name in want):
        return want
    return tuple(k for k, v in out.items() if isinstance(v, torch.Tensor))


def _export_single(model, task: str, stage: Path, opset) -> tuple:
    feeds, axes = _single_inputs(model, TRACE[B], TRACE[SEQ], seed=0)
    outputs = _outputs(model, task, feeds)
    export_graph(wrapper(_single_forward(outputs), model.config)(model), feeds, axes, {}, stage / "model.onnx", opset)
    return outputs


def _reference_cache(model, feeds: dict) -> list:
    """The KV cache PyTorch returns for ``feeds``: its tensors' shapes give the past inputs'."""
    import torch

    with torch.no_grad():
        out = model(**feeds, use_cache=True, return_dict=True)
    cache = out.get(cache_kw(model)) or out.get("past_key_values")
    if cache is None:  # e.g. BERT's LM head, which is not configured as a decoder
        raise BadInput(f"cannot export {model.config.model_type!r} as text-generation-with-past: {type(model).__name__} returns no KV cache")
    return flat_cache(cache)


def _export_decoder(model, stage: Path, opset, with_past: bool) -> None:
    import torch

    rng = np.random.default_rng(0)
    feeds = text_inputs(model, TRACE[B], TRACE[SEQ], rng)
    feeds.pop("token_type_ids", None)
    if not with_past:
        feeds = {k: v for k, v in feeds.items() if k in NO_PAST_INPUTS}
        export_graph(
            wrapper(_single_forward(("logits",)), model.config)(model),
            feeds,
            {key: {0: B, 1: SEQ} for key in feeds},
            {},
            stage / "model.onnx",
            opset,
        )
        return
    cache = _reference_cache(model, {k: v for k, v in feeds.items() if k == "input_ids"})
    batch, seq, past_len = TRACE[B], TRACE[SEQ], TRACE[PAST]
    past = {f"past_{i}": torch.randn(batch, t.shape[1], past_len, *t.shape[3:]) for i, t in enumerate(cache)}
    if "attention_mask" in feeds:
        feeds["attention_mask"] = torch.ones(batch, past_len + seq, dtype=torch.int64)
    if "position_ids" in forward_params(model):
        feeds["position_ids"] = torch.arange(past_len, past_len + seq).expand(batch, -1).contiguous()
    # the mask covers past + new tokens; named as the sum (as optimum does), the runtime binds it
    axes = {"input_ids": {0: B, 1: SEQ}, "position_ids": {0: B, 1: SEQ}, "attention_mask": {0: B, 1: f"{PAST} + {SEQ}"}}
    axes.update({key: {0: B, 2: PAST} for key in past})
    names = {**_kv_names("past_", "past_key_values", len(cache)), **_kv_names("present_", "present", len(cache))}
    export_graph(wrapper(_decoder_forward, model.config)(model), {**feeds, **past}, axes, names, stage / "model.onnx", opset)


def _kv_names(prefix: str, onnx_prefix: str, count: int) -> dict:
    return {f"{prefix}{i}": f"{onnx_prefix}.{i // 2}.{('key', 'value')[i % 2]}" for i in range(count)}


def torch_runner(model, outputs):
    """feeds -> {output name: PyTorch's value}, for the one-graph validation."""
    import torch

    def run(feeds):
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}, return_dict=True)
        return {name: out[name].numpy() for name in outputs}

    return run


def export(model, task: str, stage: Path, opset: int | None) -> dict:
    """Export ``model`` (loaded as ``task``) into ``stage``; the validation cases and PyTorch runner."""
    quiet()
    if seq2seq.is_seq2seq_task(task):
        transformers_seq2seq.export_seq2seq(model, stage, opset)
        return {"cases": [], "torch_fn": None}
    outputs = TASKS[task][1]
    if decoder.is_decoder_task(task) or task == "text-generation":
        _export_decoder(model, stage, opset, with_past=decoder.is_decoder_task(task))
        if decoder.is_decoder_task(task):
            return {"cases": [], "torch_fn": None}
    else:
        outputs = _export_single(model, task, stage, opset)
    cases = []
    for i, (batch, seq) in enumerate(((1, 16), (3, 7))):
        feeds, _ = _single_inputs(model, batch, seq, seed=i)
        if task == "text-generation":
            feeds = {k: v for k, v in feeds.items() if k in NO_PAST_INPUTS}
        cases.append({k: v.numpy() for k, v in feeds.items()})
    return {"cases": cases, "torch_fn": torch_runner(model, outputs)}
