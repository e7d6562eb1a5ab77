"""Distillation losses.

- ``logits``: KL(teacher || student) of temperature-softened class distributions, times T^2
  (Hinton et al., 2015), mixed with the hard-label cross-entropy by ``alpha``.
- ``hidden``: MSE between mapped student/teacher hidden states over real (unpadded) tokens.
- ``relations``: MiniLMv2 (Wang et al., 2021) self-attention relations of the last layer: for
  queries, keys and values each, softmax(X X^T / sqrt(d)) per relation head, matched by KL over
  real tokens. Relation heads split the full attention width, so teacher and student may have
  different head counts.
"""

from __future__ import annotations


def logits(student, teacher, labels, temperature: float, alpha: float):
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), reduction="batchmean", log_target=True) * t * t
    if alpha and labels is not None:
        return alpha * F.cross_entropy(student, labels) + (1 - alpha) * soft
    return soft


def hidden(student_states, teacher_states, layer_map: list[int], mask):
    """``layer_map[i]``: the teacher layer student layer i learns from (hidden_states[0] is the embeddings)."""
    m = mask.unsqueeze(-1).to(student_states[0].dtype)
    total = 0.0
    for i, j in enumerate(layer_map):
        diff = (student_states[i + 1] - teacher_states[j + 1]) * m
        total = total + diff.pow(2).sum() / (m.sum() * diff.shape[-1])
    return total / len(layer_map)


def relation_logprobs(x, mask, heads: int):
    """log softmax(X X^T / sqrt(d)) per relation head; padded keys are masked out."""
    import torch

    b, s, width = x.shape
    d = width // heads
    xr = x.view(b, s, heads, d).transpose(1, 2)  # b, h, s, d
    scores = xr @ xr.transpose(-1, -2) / d**0.5
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    return scores.log_softmax(-1)


def relations(student_qkv, teacher_qkv, mask, heads: int):
    """Mean KL over Q-Q, K-K and V-V relations, over real query positions."""
    total = 0.0
    q_mask = mask.bool()[:, None, :, None]
    n = q_mask.sum() * heads
    for s, t in zip(student_qkv, teacher_qkv):
        ls, lt = relation_logprobs(s, mask, heads), relation_logprobs(t, mask, heads)
        kl = (lt.exp() * (lt - ls)).masked_fill(~mask.bool()[:, None, None, :], 0.0).sum(-1, keepdim=True)
        total = total + kl.masked_fill(~q_mask, 0.0).sum() / n
    return total / len(student_qkv)
