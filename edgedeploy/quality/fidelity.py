"""Fidelity of a model against a reference on the same real inputs: mean/min cosine of
outputs per sample (mean and worst; hidden states mean-pooled over the attention mask), top-1 agreement
for classifier logits, max abs diff."""

from __future__ import annotations

import numpy as np

from edgedeploy.runtimes.session import Runner


def pooled(output: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """One vector per sample: mean over valid tokens for [batch, seq, hidden]."""
    if output.ndim == 3 and mask is not None and mask.shape == output.shape[:2]:
        m = mask[..., None].astype(np.float64)
        return (output * m).sum(1) / np.maximum(m.sum(1), 1)
    return output.reshape(output.shape[0], -1)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


class Collector:
    """Accumulates per-sample statistics over streamed batches (bounded memory)."""

    def __init__(self):
        self.cos: list[np.ndarray] = []
        self.agree: list[np.ndarray] = []
        self.max_abs = 0.0
        self.finite = True

    def add(self, got: np.ndarray, want: np.ndarray, mask):
        self.finite &= bool(np.isfinite(got).all())
        self.max_abs = max(self.max_abs, float(np.abs(got.astype(np.float64) - want).max()))
        self.cos.append(cosine(pooled(got, mask), pooled(want, mask)))
        if got.ndim == 2 and got.shape[1] > 1:
            self.agree.append(got.argmax(1) == want.argmax(1))

    def result(self, output_name: str) -> dict:
        c = np.concatenate(self.cos) if self.cos else np.array([np.nan])
        out = {
            "output": output_name,
            "samples": int(c.size),
            "mean_cosine": float(np.mean(c)),
            "worst_cosine": float(np.min(c)),
            "max_abs_diff": self.max_abs,
            "finite": self.finite,
        }
        if self.agree:
            out["top1_agreement"] = float(np.concatenate(self.agree).mean())
        return out


def worst_cosine(fidelity: dict) -> float:
    """The worst sample's cosine."""
    return fidelity["worst_cosine"]


def compare_models(candidate, reference, batches, output_index: int = 0) -> dict:
    """Stream ``batches`` through both models and compare (bounded memory)."""
    cand, ref = Runner(candidate, [output_index]), Runner(reference, [output_index])
    col = Collector()
    for feeds in batches:
        col.add(cand.first(feeds), ref.first(feeds), feeds.get("attention_mask"))
    return col.result(cand.names[0])


def reference_outputs(reference, batches, output_index: int = 0) -> list[tuple[dict, np.ndarray]]:
    """Run the reference once and keep (feeds, output) pairs, for search loops that
    compare many candidates on the same small sample."""
    ref = Runner(reference, [output_index])
    return [(feeds, ref.first(feeds)) for feeds in batches]


def compare_to_outputs(candidate, ref_outputs, output_index: int = 0) -> dict:
    cand = Runner(candidate, [output_index])
    col = Collector()
    for feeds, want in ref_outputs:
        col.add(cand.first(feeds), want, feeds.get("attention_mask"))
    return col.result(cand.names[0])
