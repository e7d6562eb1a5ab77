"""Greedy generation with a KV cache, numpy and onnxruntime only (this runs on the device).

A decoder exported with past (optimum's ``text-generation-with-past``) takes ``input_ids``,
usually ``attention_mask`` and ``position_ids``, and one ``past_key_values.<i>.key/value`` per
layer, and returns ``logits`` and ``present.<i>.key/value``. Prefill runs the prompt with an
empty past; each decode step feeds the one new token and the presents of the step before.
On providers that support it the presents stay in ONNX Runtime's own buffers between steps
(I/O binding), so no step copies the cache through numpy.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import JobError

PAST, PRESENT = "past_key_values.", "present."
DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
MAX_TOKENS = 1 << 16


class Decoder:
    """The KV-cache interface of one session, read from its inputs and outputs."""

    def __init__(self, sess):
        self.sess = sess
        ins = {i.name: i for i in sess.get_inputs()}
        outs = [o.name for o in sess.get_outputs()]
        self.past = [n for n in ins if n.startswith(PAST)]
        if "input_ids" not in ins or not self.past or "logits" not in outs:
            raise JobError(
                "this model has no KV-cache inputs (past_key_values.*): export it with "
                "`edgedeploy export SOURCE --task text-generation-with-past` to generate with it"
            )
        self.present = {n: PRESENT + n[len(PAST) :] for n in self.past}
        missing = [p for p in self.present.values() if p not in outs]
        if missing:
            raise JobError(f"the model takes {self.past[0]} but does not return {missing[0]}")
        self.has_mask, self.has_positions = "attention_mask" in ins, "position_ids" in ins
        self.empty = {n: empty_past(ins[n], 1) for n in self.past}
        self.binding = "CPUExecutionProvider" in sess.get_providers()
        self.suppress: list[int] = []

    def _feeds(self, ids: np.ndarray, start: int) -> dict:
        n = ids.shape[1]
        feeds = {"input_ids": ids.astype(np.int64)}
        if self.has_mask:
            feeds["attention_mask"] = np.ones((1, start + n), dtype=np.int64)
        if self.has_positions:
            feeds["position_ids"] = np.arange(start, start + n, dtype=np.int64)[None, :]
        return feeds

    def greedy(self, prompt: np.ndarray, new_tokens: int, clock=time.perf_counter, suppress=()) -> dict:
        """Generate ``new_tokens`` greedily after ``prompt`` (1 x P int64), never choosing the ids
        in ``suppress`` (an end-of-text id, so that every run decodes all its tokens). Returns the
        tokens, the time to the first token and each decode step's time, in seconds."""
        prompt = np.asarray(prompt, dtype=np.int64).reshape(1, -1)
        self.suppress = [int(i) for i in suppress]
        run = self._step_bound if self.binding else self._step_plain
        t0 = clock()
        token, past = run(prompt, 0, dict(self.empty))
        ttft = clock() - t0
        tokens, steps, pos = [token], [], prompt.shape[1]
        for _ in range(new_tokens - 1):
            t = clock()
            token, past = run(np.array([[token]], dtype=np.int64), pos, past)
            steps.append(clock() - t)
            tokens.append(token)
            pos += 1
        return {"tokens": tokens, "ttft_s": ttft, "step_s": steps}

    def prefill_logits(self, prompt: np.ndarray) -> np.ndarray:
        """The logits of every prompt position, from an empty past (for validation)."""
        feeds = {**self._feeds(np.asarray(prompt, dtype=np.int64).reshape(1, -1), 0), **self.empty}
        return self.sess.run(["logits"], feeds)[0]

    def _step_plain(self, ids, start, past):
        names = ["logits", *self.present.values()]
        outs = self.sess.run(names, {**self._feeds(ids, start), **past})
        nxt = {p: outs[i + 1] for i, p in enumerate(self.past)}
        return self._pick(outs[0][0, -1]), nxt

    def _step_bound(self, ids, start, past):
        outs = bound_run(self.sess, {**self._feeds(ids, start), **past}, ["logits", *self.present.values()])
        logits = outs[0].numpy()
        return self._pick(logits[0, -1]), {p: outs[i + 1] for i, p in enumerate(self.past)}

    def _pick(self, logits: np.ndarray) -> int:
        return pick(logits, self.suppress)


def pick(logits: np.ndarray, suppress=()) -> int:
    """The greedy choice over ``logits`` (one position), never an id in ``suppress``."""
    if suppress:
        logits = logits.copy()
        logits[[i for i in suppress if 0 <= i < logits.shape[-1]]] = -np.inf
    return int(np.argmax(logits))


def bound_run(sess, feeds: dict, names: list[str]) -> list:
    """One run through I/O binding: numpy feeds are bound from host memory, ORT values (the
    cache of the step before) as they are; the outputs stay ORT values, allocated by ORT."""
    io = sess.io_binding()
    for k, v in feeds.items():
        if isinstance(v, np.ndarray):
            io.bind_cpu_input(k, v)
        else:
            io.bind_ortvalue_input(k, v)
    for n in names:
        io.bind_output(n, "cpu")
    sess.run_with_iobinding(io)
    return io.get_outputs()


def empty_past(arg, batch: int) -> np.ndarray:
    """The empty (zero-length) past for the session input ``arg``: its shape must be
    [batch, heads, past, head_dim] with fixed heads and head_dim, its type float."""
    dims = [d if isinstance(d, int) and 0 < d <= MAX_TOKENS else None for d in arg.shape]
    if len(dims) != 4 or dims[1] is None or dims[3] is None or arg.type not in DTYPES:
        raise JobError(f"{arg.name}: expected a float past of shape [batch, heads, past, head_dim], got {arg.shape} {arg.type}")
    return np.zeros((batch, dims[1], 0, dims[3]), dtype=DTYPES[arg.type])


def prefill_feeds(sess, feeds: dict) -> dict:
    """``feeds`` (input_ids, attention_mask) completed for a prefill: an empty past for every
    layer and, where the model takes them, positions counted along the mask."""
    ins = {i.name: i for i in sess.get_inputs()}
    ids = feeds["input_ids"]
    out = {k: v for k, v in feeds.items() if k in ins}
    for name, i in ins.items():
        if name.startswith(PAST) and name not in out:
            out[name] = empty_past(i, ids.shape[0])
    if "position_ids" in ins and "position_ids" not in out:
        mask = feeds.get("attention_mask", np.ones_like(ids))
        out["position_ids"] = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int64)
    if "attention_mask" in ins and "attention_mask" not in out:
        out["attention_mask"] = np.ones_like(ids, dtype=np.int64)
    return out


def check_lengths(prompt_tokens: int, new_tokens: int, max_positions: int | None) -> None:
    if prompt_tokens < 1 or new_tokens < 1:
        raise JobError(f"prompt tokens and new tokens must be at least 1 (got {prompt_tokens} and {new_tokens})")
    if max_positions and prompt_tokens + new_tokens > max_positions:
        raise JobError(f"{prompt_tokens} prompt + {new_tokens} new tokens exceed the model's {max_positions} positions")


def check_settings(gen) -> dict | None:
    """A job's ``generate`` section: {"prompt_tokens": P, "new_tokens": N} or None."""
    if gen is None:
        return None
    if not isinstance(gen, dict) or set(gen) != {"prompt_tokens", "new_tokens"}:
        raise JobError(f"generate must be a mapping with prompt_tokens and new_tokens, got {gen!r:.80}")
    for k, v in gen.items():
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_TOKENS:
            raise JobError(f"generate.{k} must be an integer from 1 to {MAX_TOKENS}, got {v!r:.80}")
    return dict(gen)


def target(name: str, sess, model: dict, gen: dict, seed: int = 0):
    """A Timed target whose one inference is one whole greedy generation; the per-run
    records (time to first token, decode steps) go to the returned list."""
    from .measure import Timed

    dec = Decoder(sess)
    max_pos = model.get("max_positions")
    check_lengths(gen["prompt_tokens"], gen["new_tokens"], max_pos if isinstance(max_pos, int) and max_pos > 0 else None)
    vocab = model.get("vocab_size") if isinstance(model.get("vocab_size"), int) and model["vocab_size"] > 3 else 100
    prompt = np.random.default_rng(seed).integers(3, vocab, size=(1, gen["prompt_tokens"]), dtype=np.int64)
    records: list[dict] = []
    timed = Timed(name, lambda: records.append(dec.greedy(prompt, gen["new_tokens"])))
    return {"timed": timed, "records": records, "feeds": {"input_ids": prompt}, "io_binding": dec.binding}


def summarize(records: list[dict], steady: int, gen: dict, io_binding: bool) -> dict:
    """Generation statistics over the last ``steady`` runs (the timed ones, after warm-up)."""
    from .stats import summarize as stats

    runs = records[-steady:]
    ttft = [r["ttft_s"] * 1e3 for r in runs]
    steps = [s * 1e3 for r in runs for s in r["step_s"]]
    out = {
        "prompt_tokens": gen["prompt_tokens"],
        "new_tokens": gen["new_tokens"],
        "runs": len(runs),
        "ttft_ms": stats(ttft),
        "prefill_tokens_per_s": gen["prompt_tokens"] / (float(np.median(ttft)) / 1e3) if gen["prompt_tokens"] else None,
        "decode_tokens_per_s": len(steps) / (sum(steps) / 1e3) if steps else None,
        "inter_token_ms": stats(steps) if steps else None,
        "io_binding": io_binding,
    }
    return out
