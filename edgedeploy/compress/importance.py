"""How much each attention head and each feed-forward neuron matters.

- ``gradient``: Michel et al. (2019), "Are Sixteen Heads Really Better than One?": a gate of
  ones multiplies each head's output (each neuron's activation); the importance is the mean
  absolute gradient of the task loss with respect to that gate over real labeled batches.
  The gates are forward hooks, so this works on models whose layers were already pruned to
  different head counts (Hugging Face's ``head_mask`` cannot).
- ``magnitude``: the L2 norm of a head's query/key/value rows and output-projection columns
  (a neuron's input row and output column); needs no data.
"""

from __future__ import annotations

import numpy as np

from edgedeploy.exporters.encoder_parts import Encoder


def magnitude(enc: Encoder) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import torch

    heads, neurons = [], []
    d = enc.head_size()
    with torch.no_grad():
        for i in range(len(enc.layers)):
            n = enc.num_heads(i)
            rows = sum(enc.part(i, p).weight.reshape(n, d, -1).pow(2).sum((1, 2)) for p in ("q", "k", "v"))
            cols = enc.part(i, "attn_out").weight.reshape(-1, n, d).pow(2).sum((0, 2))
            heads.append((rows + cols).sqrt().numpy())
            w_in, w_out = enc.part(i, "ffn_in").weight, enc.part(i, "ffn_out").weight
            neurons.append((w_in.pow(2).sum(1) + w_out.pow(2).sum(0)).sqrt().numpy())
    return heads, neurons


def gradient(enc: Encoder, batches) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``batches`` yields (inputs, labels); the model's own loss is differentiated."""
    import torch

    model = enc.model
    d = enc.head_size()
    head_gates = [torch.ones(enc.num_heads(i), requires_grad=True) for i in range(len(enc.layers))]
    ffn_gates = [torch.ones(enc.part(i, "ffn_in").out_features, requires_grad=True) for i in range(len(enc.layers))]
    hooks = []
    for i in range(len(enc.layers)):
        # the output projection's input is the heads side by side: gate each head's slice
        hooks.append(
            enc.part(i, "attn_out").register_forward_pre_hook(lambda _m, args, g=head_gates[i]: (args[0] * g.repeat_interleave(d),) + tuple(args[1:]))
        )
        # feed-forward: gate the activations going into the down-projection
        hooks.append(enc.part(i, "ffn_out").register_forward_pre_hook(lambda _m, args, g=ffn_gates[i]: (args[0] * g,) + tuple(args[1:])))
    head_imp = [torch.zeros_like(g) for g in head_gates]
    ffn_imp = [torch.zeros_like(g) for g in ffn_gates]
    was_training = model.training
    model.eval()  # no dropout: importance of the network that will be kept
    try:
        n = 0
        for inputs, labels in batches:
            loss = model(**inputs, labels=labels).loss
            grads = torch.autograd.grad(loss, head_gates + ffn_gates)
            for acc, g in zip(head_imp + ffn_imp, grads):
                acc += g.abs()
            n += 1
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return [(h / max(n, 1)).numpy() for h in head_imp], [(f / max(n, 1)).numpy() for f in ffn_imp]
