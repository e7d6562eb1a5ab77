"""Fidelity of an encoder-decoder against its parent, through the generation loop on the
device runtime: the same random encoder inputs, greedy tokens compared one for one, and the
decoder's logits teacher-forced on the parent's tokens (cosine per sample, top-1 agreement)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.data.samples import SampleSource
from edgedeploy.quality.fidelity import cosine
from edgedeploy.runtimes.seq2seq import Seq2Seq, encoder_feeds
from edgedeploy.runtimes.session import cpu_session

LENGTHS = (4, 8, 12, 16, 24, 32, 48, 64)  # prompt tokens of the samples (text encoders)
NEW_TOKENS = 8


def seq2seq_eval(art, ref, data: Path, text_column: str, limit: int | None) -> dict:
    """``eval`` of an encoder-decoder: its fidelity against ``ref`` by generation, each row of
    ``data`` tokenized by the artifact's tokenizer as one encoder input."""
    if ref is None:
        raise BadInput(f"{art.path}: an encoder-decoder is evaluated against --reference PARENT, by generation (there are no labels to score)")
    if set(art.graph_files) != set(ref.graph_files):
        raise BadInput(f"{ref.path}: its graphs ({', '.join(ref.graph_files)}) are not those of {art.path}")
    if "input_ids" not in art.input_names:
        raise BadInput(f"{art.path}: its encoder takes {art.input_names[0]}, not text; eval reads text (quantize measured it on random inputs)")
    src = SampleSource(art, data, text_column, limit=limit or 64, batch=1)
    fid = compare_seq2seq(art.path, ref.path, art.graph_files, art.manifest.start_token, art.manifest.vocab_size, samples=iter(src))
    fid["reference"] = str(ref.path)
    return {
        "artifact": str(art.path),
        "artifact_digest": art.digest,
        "data": str(data),
        "samples": fid["samples"],
        "fidelity": fid,
        "measured": "measured",
    }


def _load(root: Path, graphs: dict) -> Seq2Seq:
    return Seq2Seq(*(cpu_session(root / graphs[r]) for r in ("encoder", "decoder", "decoder-with-past")))


def random_samples(encoder, vocab: int | None):
    """Random encoder inputs: text prompts of ``LENGTHS`` tokens, or two of a speech model's fixed features."""
    for i, n in enumerate(LENGTHS):
        feeds = encoder_feeds(encoder, n, vocab, seed=i)
        yield feeds
        if "input_ids" not in feeds and i >= 1:
            return


def compare_seq2seq(candidate: Path, reference: Path, graphs: dict, start: int, vocab: int | None, suppress=(), samples=None) -> dict:
    """Compare the graphs ``graphs`` ({role: file}) under ``candidate`` with those under
    ``reference`` on ``samples`` (encoder feeds of batch 1; default: ``random_samples``)."""
    cand, ref = _load(candidate, graphs), _load(reference, graphs)
    cos, top1, same, max_abs, finite = [], [], [], 0.0, True
    for feeds in samples if samples is not None else random_samples(ref.encoder, vocab):
        want = ref.greedy(feeds, start, NEW_TOKENS, suppress=suppress)["tokens"]
        got = cand.greedy(feeds, start, NEW_TOKENS, suppress=suppress)["tokens"]
        a = cand.teacher_forced_logits(feeds, start, want)[0].astype(np.float64)
        b = ref.teacher_forced_logits(feeds, start, want)[0].astype(np.float64)
        finite &= bool(np.isfinite(a).all())
        max_abs = max(max_abs, float(np.abs(a - b).max()))
        cos.append(float(cosine(a.reshape(1, -1), b.reshape(1, -1))[0]))
        top1.append(float((a.argmax(-1) == b.argmax(-1)).mean()))
        same.append(float(np.mean([x == y for x, y in zip(got, want)])))
    if not cos:
        raise BadInput("no samples to compare")
    return {
        "output": "logits",
        "samples": len(cos),
        "mean_cosine": float(np.mean(cos)),
        "worst_cosine": float(np.min(cos)),
        "max_abs_diff": max_abs,
        "finite": finite,
        "top1_agreement": float(np.mean(top1)),
        "token_agreement": float(np.mean(same)),
        "how": f"greedy generation of {NEW_TOKENS} tokens per sample; logits teacher-forced on the reference's tokens",
    }
