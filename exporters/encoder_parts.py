"""Where the prunable parts of a transformer encoder live, per architecture family: the layer
list, each layer's attention (query/key/value, the output projection whose input is the
concatenated heads) and feed-forward pair, and the config keys that must change so that a
pruned or shortened model reloads.

Removed heads are recorded in the config's ``pruned_heads``. transformers 4 re-applies them in
its own ``from_pretrained``; transformers 5 dropped head pruning, so ``from_pretrained`` here
builds such a model at full size, removes the same heads and then loads its weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters.safe_load import weight_files


@dataclass(frozen=True)
class Family:
    layers: str  # dotted path from the base model to the ModuleList of layers
    q: str
    k: str
    v: str
    attn_out: str  # Linear whose input is the concatenated heads
    attn: str  # module holding the head count
    heads_attr: str
    ffn_in: str
    ffn_out: str
    ffn_key: str  # config key of the feed-forward width
    layers_key: str


_BERT = Family(
    "encoder.layer",
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.self",
    "num_attention_heads",
    "intermediate.dense",
    "output.dense",
    "intermediate_size",
    "num_hidden_layers",
)
_DISTILBERT = Family(
    "transformer.layer",
    "attention.q_lin",
    "attention.k_lin",
    "attention.v_lin",
    "attention.out_lin",
    "attention",
    "n_heads",
    "ffn.lin1",
    "ffn.lin2",
    "hidden_dim",
    "n_layers",
)
FAMILIES = {"bert": _BERT, "roberta": _BERT, "xlm-roberta": _BERT, "electra": _BERT, "camembert": _BERT, "distilbert": _DISTILBERT}


def _get(module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


class Encoder:
    """A view of one Hugging Face encoder model's prunable structure."""

    def __init__(self, model):
        model_type = getattr(model.config, "model_type", None)
        if model_type not in FAMILIES:
            raise BadInput(f"pruning and distillation support encoder families {', '.join(sorted(FAMILIES))}; this model is {model_type!r}")
        self.model = model
        self.family = FAMILIES[model_type]
        self.base = getattr(model, model.base_model_prefix, model)

    @property
    def layers(self):
        return _get(self.base, self.family.layers)

    def part(self, layer: int, name: str):
        return _get(self.layers[layer], getattr(self.family, name))

    def num_heads(self, layer: int) -> int:
        return int(getattr(self.part(layer, "attn"), self.family.heads_attr))

    def head_size(self) -> int:
        cfg = self.model.config
        return cfg.hidden_size // cfg.num_attention_heads

    def original_heads(self) -> int:
        return int(self.model.config.num_attention_heads)

    def surviving_heads(self, layer: int) -> list[int]:
        """Original indices of the heads still present in ``layer``, in their current order."""
        gone = set(pruned_heads(self.model.config).get(layer, ()))
        return [h for h in range(self.original_heads()) if h not in gone]

    def remove_heads(self, plan: dict[int, list[int]]) -> None:
        """Physically remove these heads (original indices) from their layers: transformers 4's
        ``prune_heads`` where the model has it, else the same slicing here (transformers 5)."""
        if hasattr(self.model, "prune_heads"):
            self.model.prune_heads(plan)
            return
        import torch

        size, record = self.head_size(), pruned_heads(self.model.config)
        for layer, heads in plan.items():
            keep = [i for i, h in enumerate(self.surviving_heads(layer)) if h not in heads]
            idx = torch.tensor([i * size + j for i in keep for j in range(size)], dtype=torch.long)
            for name in ("q", "k", "v", "attn_out"):
                self._slice(layer, name, idx, dim=1 if name == "attn_out" else 0)
            setattr(self.part(layer, "attn"), self.family.heads_attr, len(keep))
            record[layer] = sorted(set(record.get(layer, ())) | set(heads))
        self.model.config.pruned_heads = record

    def _slice(self, layer: int, name: str, idx, dim: int) -> None:
        """Replace a Linear by one keeping ``idx`` along ``dim`` (0: outputs, 1: inputs)."""
        import torch

        lin = self.part(layer, name)
        rows, cols = (len(idx), lin.in_features) if dim == 0 else (lin.out_features, len(idx))
        new = torch.nn.Linear(cols, rows, bias=lin.bias is not None)
        with torch.no_grad():
            new.weight.copy_(lin.weight.index_select(dim, idx))
            if lin.bias is not None:
                new.bias.copy_(lin.bias if dim == 1 else lin.bias.index_select(0, idx))
        parent_path, _, attr = getattr(self.family, name).rpartition(".")
        setattr(_get(self.layers[layer], parent_path), attr, new)

    def ffn_width(self) -> int:
        return int(getattr(self.model.config, self.family.ffn_key))

    def keep_layers(self, keep: list[int]) -> None:
        """Keep only these layers (in this order); pruned-head records move with their layers."""
        import torch

        n = len(self.layers)
        bad = [i for i in keep if not 0 <= i < n]
        if bad or not keep or len(set(keep)) != len(keep):
            raise BadInput(f"--keep-layers {','.join(map(str, keep))}: give distinct layer indices from 0 to {n - 1}")
        kept = torch.nn.ModuleList([self.layers[i] for i in keep])
        parent_path, _, attr = self.family.layers.rpartition(".")
        setattr(_get(self.base, parent_path) if parent_path else self.base, attr, kept)
        setattr(self.model.config, self.family.layers_key, len(keep))
        old = pruned_heads(self.model.config)
        self.model.config.pruned_heads = {new: list(old[i]) for new, i in enumerate(keep) if old.get(i)}

    def silence_last_head(self, layer: int) -> None:
        """A layer whose every head was removed. Hugging Face's BERT and DistilBERT cannot run a
        zero-head attention (nor reload one), so the last head stays with zero query/key/value and
        output weights, frozen: the sublayer then adds only its output bias, exactly as an empty
        attention would."""
        import torch

        if self.num_heads(layer) != 1:
            raise AssertionError("silence_last_head expects exactly one head left")
        with torch.no_grad():
            for name in ("q", "k", "v", "attn_out"):
                lin = self.part(layer, name)
                lin.weight.zero_()
                lin.weight.requires_grad_(False)
                if name != "attn_out" and lin.bias is not None:
                    lin.bias.zero_()
                    lin.bias.requires_grad_(False)

    def prune_ffn(self, keep_per_layer: dict[int, list[int]]) -> None:
        """Keep these intermediate neurons (same count in every layer, so the config stays one number)."""
        import torch

        widths = {len(v) for v in keep_per_layer.values()}
        if len(widths) != 1 or set(keep_per_layer) != set(range(len(self.layers))):
            raise AssertionError("feed-forward pruning must keep the same width in every layer")
        for layer, keep in keep_per_layer.items():
            idx = torch.tensor(sorted(keep), dtype=torch.long)
            for name, dim in (("ffn_in", 0), ("ffn_out", 1)):
                self._slice(layer, name, idx, dim)
        setattr(self.model.config, self.family.ffn_key, widths.pop())


def pruned_heads(config) -> dict[int, list[int]]:
    """The config's removed heads by layer (JSON keeps the layer numbers as strings)."""
    return {int(k): list(v) for k, v in (getattr(config, "pruned_heads", None) or {}).items()}


def from_pretrained(cls, path, **kwargs):
    """``cls.from_pretrained(path)``; on transformers 5, a model whose config records removed heads
    is built at full size, loses the same heads, then loads its weights (strictly)."""
    import transformers
    from safetensors.torch import load_file

    config = transformers.AutoConfig.from_pretrained(str(path), **kwargs)
    pruned = pruned_heads(config)
    if not pruned or int(transformers.__version__.split(".")[0]) < 5:
        return cls.from_pretrained(str(path), **kwargs)
    config.pruned_heads = {}
    model = cls.from_config(config)
    Encoder(model).remove_heads(pruned)
    files = weight_files(Path(path))
    if any(f.suffix != ".safetensors" for f in files):
        raise BadInput(f"{path}: a model with removed heads loads from .safetensors weights here")
    state = {k: v for f in files for k, v in load_file(str(f)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("position_ids")} | set(getattr(model, "_tied_weights_keys", None) or ())
    if unexpected or set(missing) - tied:
        raise BadInput(f"{path}: its weights do not fit its config with heads {pruned} removed ({(unexpected or missing)[0]})")
    return model


def parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))
