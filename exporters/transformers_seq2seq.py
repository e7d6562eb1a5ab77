"""Encoder-decoders on the transformers 5 stack: three graphs (``encoder_model.onnx``,
``decoder_model.onnx``, ``decoder_with_past_model.onnx``) named as optimum names them, which
``exporters/seq2seq.py`` validates by generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.exporters import seq2seq
from edgedeploy.exporters.onnx_trace import (
    DEC,
    ENC,
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
    text_inputs,
    wrapper,
)


def _encoder_forward(model, feeds):
    return {"last_hidden_state": model.get_encoder()(**feeds, return_dict=True).last_hidden_state}


def _seq2seq_call(model, feeds, hidden, cache):
    kw = cache_kw(model)
    mask = {"attention_mask": feeds["encoder_attention_mask"]} if "encoder_attention_mask" in feeds else {}
    out = model(encoder_outputs=(hidden,), decoder_input_ids=feeds["input_ids"], **mask, **{kw: cache}, use_cache=True, return_dict=True)
    return out, out[kw]


def _first_step_forward(model, feeds):
    from transformers import DynamicCache, EncoderDecoderCache

    out, cache = _seq2seq_call(model, feeds, feeds["encoder_hidden_states"], EncoderDecoderCache(DynamicCache(), DynamicCache()))
    flat = flat_cache(cache.self_attention_cache) + flat_cache(cache.cross_attention_cache)
    return {"logits": out.logits, **{f"present_{i}": t for i, t in enumerate(flat)}}


def _with_past_forward(model, feeds):
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    past = [feeds[k] for k in sorted((k for k in feeds if k.startswith("past_")), key=index)]
    n = len(past) // 2
    cache = EncoderDecoderCache(DynamicCache(pairs(past[:n])), DynamicCache(pairs(past[n:])))
    # the cross-attention keys and values come from the cache; the encoder's states are not read again
    cross = past[n]
    hidden = torch.zeros(cross.shape[0], cross.shape[2], model.config.d_model if hasattr(model.config, "d_model") else model.config.hidden_size)
    out, cache = _seq2seq_call(model, feeds, hidden, cache)
    return {"logits": out.logits, **{f"present_{i}": t for i, t in enumerate(flat_cache(cache.self_attention_cache))}}


def _seq2seq_names(prefix: str, onnx_prefix: str, layers: int, cross: bool) -> dict:
    names = {f"{prefix}{i}": f"{onnx_prefix}.{i // 2}.decoder.{('key', 'value')[i % 2]}" for i in range(2 * layers)}
    if cross:
        names.update({f"{prefix}{2 * layers + i}": f"{onnx_prefix}.{i // 2}.encoder.{('key', 'value')[i % 2]}" for i in range(2 * layers)})
    return names


def _encoder_inputs(model) -> tuple[dict, dict]:
    import torch

    encoder = model.get_encoder()
    params = forward_params(encoder)
    if "input_features" in params:  # speech: Whisper takes 3000 frames, Speech2Text any number (its sequence)
        cfg = model.config
        bins = getattr(cfg, "num_mel_bins", None) or getattr(cfg, "input_feat_per_channel", 80) * getattr(cfg, "input_channels", 1)
        frames = 2 * getattr(cfg, "max_source_positions", 1500) if cfg.model_type == "whisper" else 64
        feats = torch.randn(TRACE[B], bins, frames) if cfg.model_type == "whisper" else torch.randn(TRACE[B], frames, bins)
        feeds = {"input_features": feats}
        axes = {"input_features": {0: B} if cfg.model_type == "whisper" else {0: B, 1: SEQ}}
        if "attention_mask" in params and cfg.model_type != "whisper":
            feeds["attention_mask"] = torch.ones(TRACE[B], frames, dtype=torch.int64)
            axes["attention_mask"] = {0: B, 1: SEQ}
        return feeds, axes
    feeds = text_inputs(model, TRACE[B], TRACE[ENC], np.random.default_rng(0))
    return feeds, {key: {0: B, 1: ENC} for key in feeds}


def export_seq2seq(model, stage: Path, opset) -> None:
    import torch

    enc_feeds, enc_axes = _encoder_inputs(model)
    export_graph(wrapper(_encoder_forward, model.config)(model), enc_feeds, enc_axes, {}, stage / seq2seq.GRAPH_FILES["encoder"], opset)
    with torch.no_grad():
        hidden = model.get_encoder()(**enc_feeds, return_dict=True).last_hidden_state
    # the encoder's length is dynamic for text and Speech2Text's frames; Whisper's is fixed (1500)
    dynamic = any(1 in axes for axes in enc_axes.values())
    start = seq2seq.start_token(model.config)
    first = {"input_ids": torch.full((TRACE[B], TRACE[DEC]), start, dtype=torch.int64), "encoder_hidden_states": hidden}
    first_axes = {"input_ids": {0: B, 1: DEC}, "encoder_hidden_states": {0: B, 1: ENC} if dynamic else {0: B}}
    if "input_ids" in enc_feeds and "attention_mask" in enc_feeds:
        first["encoder_attention_mask"] = enc_feeds["attention_mask"]
        first_axes["encoder_attention_mask"] = {0: B, 1: ENC}
    with torch.no_grad():
        presents = list(_first_step_forward(model, first).values())[1:]
    layers = len(presents) // 4
    names = {**_seq2seq_names("present_", "present", layers, cross=True)}
    export_graph(wrapper(_first_step_forward, model.config)(model), first, first_axes, names, stage / seq2seq.GRAPH_FILES["decoder"], opset)
    past_len = TRACE[PAST]
    self_past = [torch.randn(TRACE[B], t.shape[1], past_len, *t.shape[3:]) for t in presents[: 2 * layers]]
    feeds = {"input_ids": torch.full((TRACE[B], 1), start, dtype=torch.int64)}
    axes = {"input_ids": {0: B}}
    if "encoder_attention_mask" in first:
        feeds["encoder_attention_mask"], axes["encoder_attention_mask"] = first["encoder_attention_mask"], {0: B, 1: ENC}
    feeds.update({f"past_{i}": t for i, t in enumerate([*self_past, *presents[2 * layers :]])})
    enc_axis = {0: B, 2: ENC} if dynamic else {0: B}
    axes.update({f"past_{i}": ({0: B, 2: "past_decoder_sequence_length"} if i < 2 * layers else enc_axis) for i in range(4 * layers)})
    names = {**_seq2seq_names("past_", "past_key_values", layers, cross=True), **_seq2seq_names("present_", "present", layers, cross=False)}
    export_graph(wrapper(_with_past_forward, model.config)(model), feeds, axes, names, stage / seq2seq.GRAPH_FILES["decoder-with-past"], opset)
