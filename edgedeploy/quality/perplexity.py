"""Perplexity of a decoder artifact on text, token-weighted, with a sliding window.

The texts are tokenized with the artifact's tokenizer and joined into one stream (EOS between
texts where the tokenizer has one). Windows of ``window`` tokens advance by ``stride``; each
window scores only the tokens the previous window did not, with everything before them in
the window as context (the Hugging Face recipe for fixed-length models). Perplexity is
exp(total negative log-likelihood / scored tokens). With a reference artifact, greedy
next-token agreement is the share of scored positions where both models' argmax agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgedeploy.compress.lm_tokenizer import stream
from edgedeploy.core.errors import BadInput
from edgedeploy.data.datasets import read_texts
from edgedeploy.runtimes.errors import JobError
from edgedeploy.runtimes.generate import Decoder
from edgedeploy.runtimes.session import cpu_session

DEFAULT_WINDOW = 256


def token_stream(art, data: Path, text_column: str, limit: int | None) -> np.ndarray:
    from transformers import AutoTokenizer

    if Path(data).suffix == ".txt":
        texts = [Path(data).read_text(encoding="utf-8", errors="replace")]
    else:
        texts = read_texts(data, text_column, limit or 10**12)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise BadInput(f"{data}: no text to measure perplexity on")
    try:
        tok = AutoTokenizer.from_pretrained(str(art.path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BadInput(f"{art.path}: perplexity needs the artifact's tokenizer ({str(exc).splitlines()[0][:160]})") from None
    ids = stream(tok, texts)
    if len(ids) < 2:
        raise BadInput(f"{data}: {len(ids)} token(s); perplexity needs at least 2")
    return ids


def _decoder(path) -> Decoder:
    try:
        return Decoder(cpu_session(path))
    except JobError as exc:
        raise BadInput(f"{path}: {exc}") from None


def windows(n: int, window: int, stride: int):
    """(start, end, first scored position) of each window over ``n`` tokens; every token but
    the first is scored exactly once."""
    begin, scored_to = 0, 1  # token 0 has no context: it is never scored
    while scored_to < n:
        end = min(begin + window, n)
        yield begin, end, max(scored_to, begin + 1)
        scored_to = end
        begin = min(begin + stride, end - 1)  # at least one token of context


def perplexity(art, data: Path, *, reference=None, text_column="text", limit=None, window: int | None = None, stride: int | None = None) -> dict:
    art.require_single_graph("--metric perplexity (a decoder's)")
    ids = token_stream(art, data, text_column, limit)
    max_pos = art.manifest.max_positions
    window = window or min(max_pos or DEFAULT_WINDOW, DEFAULT_WINDOW)
    if max_pos and window > max_pos:
        raise BadInput(f"--window {window} exceeds the model's {max_pos} positions")
    stride = stride or max(1, window // 2)
    if stride > window:
        raise BadInput(f"--stride {stride} is longer than the window ({window}); tokens would go unscored")
    dec, ref = _decoder(art.model_path), _decoder(reference.model_path) if reference is not None else None
    nll, scored, agree = 0.0, 0, 0
    for start, end, first in windows(len(ids), window, stride):
        chunk = ids[start:end][None, :]
        logits = dec.prefill_logits(chunk)[0].astype(np.float64)
        pos = np.arange(first - start - 1, end - start - 1)  # logits at pos predict token pos + 1
        lp = logits[pos] - _logsumexp(logits[pos])
        nll -= float(lp[np.arange(len(pos)), chunk[0, pos + 1]].sum())
        scored += len(pos)
        if ref is not None:
            agree += int((ref.prefill_logits(chunk)[0][pos].argmax(-1) == logits[pos].argmax(-1)).sum())
    out = {
        "artifact": str(art.path),
        "artifact_digest": art.digest,
        "data": str(data),
        "metric": "perplexity",
        "perplexity": math.exp(nll / scored),
        "mean_nll": nll / scored,
        "tokens": int(len(ids)),
        "scored_tokens": scored,
        "window": window,
        "stride": stride,
        "measured": "measured",
    }
    if ref is not None:
        out["reference"] = {"artifact": str(reference.path), "greedy_next_token_agreement": agree / scored}
    return out


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(-1, keepdims=True))
