"""Fidelity of an encoder-decoder against its parent, through the generation loop on the
device runtime: the same random encoder inputs, greedy tokens compared one for one, and the
decoder's logits teacher-forced on the parent's tokens (cosine per sample, top-1 agreement)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.quality.fidelity import cosine
from edgedeploy.runtimes.seq2seq import Seq2Seq, encoder_feeds
from edgedeploy.runtimes.session import cpu_session

LENGTHS = (4, 8, 12, 16, 24, 32, 48, 64)  # prompt tokens of the samples (text encoders)
NEW_TOKENS = 8


def _load(root: Path, graphs: dict) -> Seq2Seq:
    return Seq2Seq(*(cpu_session(root / graphs[r]) for r in ("encoder", "decoder", "decoder-with-past")))


def compare_seq2seq(candidate: Path, reference: Path, graphs: dict, start: int, vocab: int | None, suppress=()) -> dict:
    """Compare the graphs ``graphs`` ({role: file}) under ``candidate`` with those under ``reference``."""
    cand, ref = _load(candidate, graphs), _load(reference, graphs)
    cos, top1, same, max_abs, finite = [], [], [], 0.0, True
    for i, n in enumerate(LENGTHS):
        feeds = encoder_feeds(ref.encoder, n, vocab, seed=i)
        want = ref.greedy(feeds, start, NEW_TOKENS, suppress=suppress)["tokens"]
        got = cand.greedy(feeds, start, NEW_TOKENS, suppress=suppress)["tokens"]
        a = cand.teacher_forced_logits(feeds, start, want)[0].astype(np.float64)
        b = ref.teacher_forced_logits(feeds, start, want)[0].astype(np.float64)
        finite &= bool(np.isfinite(a).all())
        max_abs = max(max_abs, float(np.abs(a - b).max()))
        cos.append(float(cosine(a.reshape(1, -1), b.reshape(1, -1))[0]))
        top1.append(float((a.argmax(-1) == b.argmax(-1)).mean()))
        same.append(float(np.mean([x == y for x, y in zip(got, want)])))
        if "input_ids" not in feeds and i >= 1:  # speech: the features' shape is fixed; two samples
            break
    return {
        "output": "logits",
        "samples": len(cos),
        "mean_cosine": float(np.mean(cos)),
        "worst_cosine": float(np.min(cos)),
        "max_abs_diff": max_abs,
        "finite": finite,
        "top1_agreement": float(np.mean(top1)),
        "token_agreement": float(np.mean(same)),
        "how": f"greedy generation of {NEW_TOKENS} tokens on random encoder inputs; logits teacher-forced on the reference's tokens",
    }
