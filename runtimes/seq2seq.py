"""Greedy generation for encoder-decoder models (T5, BART, Marian, Whisper), numpy and
onnxruntime only (this runs on the device).

optimum's seq2seq export (``text2text-generation-with-past``, ``automatic-speech-recognition-with-past``)
writes three graphs, which an artifact lists by role:
- ``encoder``: ``input_ids`` + ``attention_mask`` (text) or ``input_features`` (speech) -> ``last_hidden_state``;
- ``decoder``, the first step: ``input_ids`` (the start token), ``encoder_hidden_states`` and,
  for text, ``encoder_attention_mask`` -> ``logits`` and ``present.<i>.{decoder,encoder}.{key,value}``;
- ``decoder-with-past``, every later step: the new token, ``past_key_values.<i>.*`` ->
  ``logits`` and the self-attention presents (the cross-attention keys never change, so they
  are the first step's, fed again).

The time to the first token is encoder + first decoder step.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import JobError
from .generate import PAST, PRESENT, bound_run, pick

ROLES = ("encoder", "decoder", "decoder-with-past")


class Seq2Seq:
    """The three sessions of an encoder-decoder model and their cache wiring, read from their inputs and outputs."""

    def __init__(self, encoder, decoder, with_past):
        self.encoder, self.decoder, self.with_past = encoder, decoder, with_past
        enc_out = [o.name for o in encoder.get_outputs()]
        dec_in = {i.name for i in decoder.get_inputs()}
        dec_out = [o.name for o in decoder.get_outputs()]
        past_in = [i.name for i in with_past.get_inputs()]
        past_out = [o.name for o in with_past.get_outputs()]
        if "last_hidden_state" not in enc_out:
            raise JobError(f"the encoder returns {enc_out[:4]}, not last_hidden_state")
        if not {"input_ids", "encoder_hidden_states"} <= dec_in or "logits" not in dec_out:
            raise JobError("the decoder does not take input_ids and encoder_hidden_states, or does not return logits")
        self.past = [n for n in past_in if n.startswith(PAST)]
        if "input_ids" not in past_in or not self.past or "logits" not in past_out:
            raise JobError("the decoder-with-past graph has no KV-cache inputs (past_key_values.*) or no logits")
        first = {n: PRESENT + n[len(PAST) :] for n in self.past}  # every past input comes from the first step's presents
        missing = [p for p in first.values() if p not in dec_out]
        if missing:
            raise JobError(f"the decoder-with-past graph takes a cache the first decoder step does not return ({missing[0]})")
        self.first = first
        self.self_attn = {n: PRESENT + n[len(PAST) :] for n in self.past if PRESENT + n[len(PAST) :] in past_out}
        if not self.self_attn:
            raise JobError("the decoder-with-past graph returns no present.* to feed the next step")
        self.enc_inputs = [i.name for i in encoder.get_inputs()]
        self.dec_mask = "encoder_attention_mask" in dec_in
        self.past_mask = "encoder_attention_mask" in past_in
        self.past_hidden = "encoder_hidden_states" in past_in
        self.binding = "CPUExecutionProvider" in with_past.get_providers()
        self.suppress: list[int] = []

    def encode(self, feeds: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """(encoder hidden states, the encoder's attention mask or None) for ``feeds``."""
        hidden = self.encoder.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in self.enc_inputs})[0]
        return hidden, feeds.get("attention_mask")

    def _mask(self, mask, hidden) -> np.ndarray:
        return mask.astype(np.int64) if mask is not None else np.ones(hidden.shape[:2], dtype=np.int64)

    def first_step(self, hidden, mask, ids: np.ndarray) -> tuple[np.ndarray, dict]:
        """The decoder graph on ``ids`` (1 x T): (logits, the cache for the next step)."""
        feeds = {"input_ids": ids.astype(np.int64), "encoder_hidden_states": hidden}
        if self.dec_mask:
            feeds["encoder_attention_mask"] = self._mask(mask, hidden)
        names = ["logits", *self.first.values()]
        outs = self.decoder.run(names, feeds)
        return outs[0], {p: outs[i + 1] for i, p in enumerate(self.first)}

    def greedy(self, enc_feeds: dict, start_id: int, new_tokens: int, clock=time.perf_counter, suppress=(), trace=False) -> dict:
        """Encode, then decode ``new_tokens`` greedily from ``start_id``, never choosing the ids in
        ``suppress``. Returns the tokens, the time to the first token and each later step's time
        (with ``trace``, also each step's logits, for validation)."""
        self.suppress = [int(i) for i in suppress]
        t0 = clock()
        hidden, mask = self.encode(enc_feeds)
        logits, cache = self.first_step(hidden, mask, np.array([[start_id]], dtype=np.int64))
        token = pick(logits[0, -1], self.suppress)
        ttft = clock() - t0
        tokens, steps, traced = [token], [], [logits[0, -1:]] if trace else None
        extra = {"encoder_attention_mask": self._mask(mask, hidden)} if self.past_mask else {}
        if self.past_hidden:  # some exports (Speech2Text) read the encoder's states at every step too
            extra["encoder_hidden_states"] = hidden
        for _ in range(new_tokens - 1):
            t = clock()
            feeds = {"input_ids": np.array([[token]], dtype=np.int64), **extra, **cache}
            names = ["logits", *self.self_attn.values()]
            outs = bound_run(self.with_past, feeds, names) if self.binding else self.with_past.run(names, feeds)
            logits = outs[0].numpy() if self.binding else outs[0]
            cache = {**cache, **{p: outs[i + 1] for i, p in enumerate(self.self_attn)}}
            token = pick(logits[0, -1], self.suppress)
            steps.append(clock() - t)
            tokens.append(token)
            if trace:
                traced.append(logits[0, -1:])
        return {"tokens": tokens, "ttft_s": ttft, "step_s": steps} | ({"logits": traced} if trace else {})

    def teacher_forced_logits(self, enc_feeds: dict, start_id: int, tokens: list[int]) -> np.ndarray:
        """The decoder graph's logits at every position of ``[start] + tokens[:-1]`` (fidelity)."""
        hidden, mask = self.encode(enc_feeds)
        ids = np.array([[start_id, *tokens[:-1]]], dtype=np.int64)
        return self.first_step(hidden, mask, ids)[0]


def encoder_feeds(encoder, prompt_tokens: int, vocab_size: int | None, seed: int = 0) -> dict:
    """Deterministic encoder inputs: ``prompt_tokens`` token ids (text) or the encoder's fixed
    feature shape (speech: batch 1, every other dim fixed by the model)."""
    from . import inputs
    from .session import signature

    sig = signature(encoder)
    vocab = vocab_size if isinstance(vocab_size, int) and vocab_size > 3 else 100
    feeds = inputs.generate(sig, {"batch": 1, "sequence": prompt_tokens}, seed=seed, vocab_size=vocab, strict=False)
    if "input_ids" in feeds:
        feeds["input_ids"] = np.random.default_rng(seed).integers(3, vocab, size=feeds["input_ids"].shape, dtype=np.int64)
    return feeds


def target(name: str, sessions: dict, model: dict, gen: dict, seed: int = 0):
    """A Timed target whose one inference is one whole encode + greedy generation."""
    from .generate import check_lengths
    from .measure import Timed

    s2s = Seq2Seq(sessions["encoder"], sessions["decoder"], sessions["decoder-with-past"])
    max_pos = model.get("max_positions")
    check_lengths(1, gen["new_tokens"], max_pos if isinstance(max_pos, int) and max_pos > 0 else None)
    start = model.get("decoder_start_token_id")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise JobError(f"a seq2seq model needs its decoder_start_token_id (a non-negative integer), got {start!r:.40}")
    feeds = encoder_feeds(sessions["encoder"], gen["prompt_tokens"], model.get("vocab_size"), seed)
    records: list[dict] = []
    timed = Timed(name, lambda: records.append(s2s.greedy(feeds, start, gen["new_tokens"])))
    text = "input_ids" in feeds
    # speech: the encoder's input is the model's fixed features, not a prompt of tokens
    lengths = {} if text else {"prompt_tokens": None}
    return {"timed": timed, "records": records, "feeds": feeds, "io_binding": s2s.binding, "lengths": lengths}
