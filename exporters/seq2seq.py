"""Encoder-decoder exports (T5, BART, Marian, Whisper): three graphs, each validated.

optimum writes ``encoder_model.onnx``, ``decoder_model.onnx`` (the first step) and
``decoder_with_past_model.onnx`` (every later step). Validation against the PyTorch model,
at two encoder inputs (text: prompts of 8 and 3 tokens; speech: the model's fixed features):
- encoder: ``last_hidden_state`` within atol/rtol;
- decoder: the first step's logits within atol/rtol;
- decoder-with-past: the logits of every later step within atol/rtol, and the greedy tokens
  of the ONNX KV-cache loop (the torch-free runtime's, the one ``bench --generate`` times)
  equal to PyTorch's greedy loop token for token. PyTorch recomputes the whole decoder at each
  step without a cache, so the cache is checked against a computation that has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters.decoder import NEW_TOKENS, PROMPTS, eos_ids, token_case
from edgedeploy.exporters.validate import ValidationResult, compare_arrays
from edgedeploy.runtimes.errors import JobError
from edgedeploy.runtimes.seq2seq import Seq2Seq, encoder_feeds
from edgedeploy.runtimes.session import cpu_session

SEQ2SEQ_TASKS = ("text2text-generation-with-past", "automatic-speech-recognition-with-past")
GRAPH_FILES = {"encoder": "encoder_model.onnx", "decoder": "decoder_model.onnx", "decoder-with-past": "decoder_with_past_model.onnx"}


def is_seq2seq_task(task: str | None) -> bool:
    return task in SEQ2SEQ_TASKS


def start_token(config) -> int:
    """The decoder's first input: decoder_start_token_id, else (as transformers' generate does)
    the start of text, else padding (T5's convention)."""
    for name in ("decoder_start_token_id", "bos_token_id", "pad_token_id"):
        start = getattr(config, name, None)
        if isinstance(start, int) and not isinstance(start, bool) and 0 <= start < int(getattr(config, "vocab_size", 1 << 31)):
            return start
    raise BadInput(
        f"model type {config.model_type!r} has no decoder_start_token_id, bos_token_id or pad_token_id in its config; one is needed to generate"
    )


def validate_seq2seq(stage: Path, model, atol: float, rtol: float, new_tokens: int = NEW_TOKENS) -> tuple[ValidationResult, dict]:
    """(per-graph numeric comparison, token comparison) of the three exported graphs against ``model``."""
    try:
        sessions = {role: cpu_session(stage / name) for role, name in GRAPH_FILES.items()}
        s2s = Seq2Seq(sessions["encoder"], sessions["decoder"], sessions["decoder-with-past"])
    except JobError as exc:
        raise BadInput(f"the exported seq2seq graphs do not fit together: {exc}") from None
    start, eos = start_token(model.config), eos_ids(model.config)
    vocab = int(model.config.vocab_size)
    result = ValidationResult(atol=atol, rtol=rtol)
    generation = {"new_tokens": new_tokens, "reference": "PyTorch greedy loop without a cache (full recompute per step)", "cases": []}
    for i, n in enumerate(PROMPTS):
        feeds = encoder_feeds(sessions["encoder"], n, vocab, seed=i)
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        want_hidden, want_logits, torch_tokens = _torch_reference(model, feeds, start, new_tokens, eos)
        got = s2s.greedy(feeds, start, new_tokens, suppress=eos, trace=True)
        hidden = s2s.encode(feeds)[0]
        result.cases.append(
            {"inputs": {"graph": "encoder", **shapes}, "outputs": [compare_arrays("last_hidden_state", hidden, want_hidden, atol, rtol)]}
        )
        logits = np.stack(got["logits"])
        result.cases.append(
            {"inputs": {"graph": "decoder", "tokens": 1}, "outputs": [compare_arrays("logits", logits[:1], want_logits[:1], atol, rtol)]}
        )
        if new_tokens > 1:
            cmp = compare_arrays("logits", logits[1:], want_logits[1:], atol, rtol)
            result.cases.append({"inputs": {"graph": "decoder-with-past", "tokens": new_tokens - 1}, "outputs": [cmp]})
        case = token_case(got["tokens"], torch_tokens, prompt_tokens=n if "input_ids" in feeds else None, encoder_inputs=shapes)
        generation["cases"].append(case)
    generation["passed"] = all(c["match"] for c in generation["cases"])
    return result, generation


def _torch_reference(model, feeds: dict, start: int, new_tokens: int, suppress: list[int]):
    """(encoder hidden states, the logits of each step, the greedy tokens) from PyTorch."""
    import torch

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}
    ids, logits = [start], []
    hidden = None
    encoder = model.get_encoder()
    if encoder.config is not model.config:  # optimum's export leaves the encoder's config asking for a cache
        encoder.config.use_cache = False
    with torch.inference_mode():
        for _ in range(new_tokens):
            res = model(**tensors, decoder_input_ids=torch.tensor([ids]), use_cache=False)
            hidden = res.encoder_last_hidden_state.numpy() if hidden is None else hidden
            out = res.logits[0, -1].numpy()
            logits.append(out[None])
            masked = out.copy()
            masked[suppress] = -np.inf
            ids.append(int(np.argmax(masked)))
    return hidden, np.stack(logits), ids[1:]
