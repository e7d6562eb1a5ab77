"""``edgedeploy prune``: structured pruning that physically removes attention heads,
feed-forward neurons and whole layers, so parameters, ONNX size and latency drop, with an
optional gradual schedule and recovery fine-tuning on labeled data (hard labels, or with
``--recover-alpha`` below 1 partly or wholly the softened logits of the model before pruning).

The output is a Hugging Face checkpoint whose config records what was removed
(``pruned_heads``, the feed-forward width, the layer count), so ``from_pretrained`` and
``edgedeploy export`` load it without special flags, plus ``compression.json``.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.compress import data as textdata
from edgedeploy.compress import losses, model_io
from edgedeploy.compress.importance import gradient, magnitude
from edgedeploy.compress.options import PruneOptions
from edgedeploy.compress.train import Diverged, Schedule, train, trainable
from edgedeploy.core.atomic import check_output_dir, refuse_inside
from edgedeploy.core.errors import BadInput
from edgedeploy.exporters.encoder_parts import Encoder, parameters

log = logging.getLogger("edgedeploy")
RECOVERY_TEMPERATURE = 2.0  # softened logits for recovery by self-distillation (as distill's default)


@dataclass
class HeadPlan:
    count: int | None = None  # heads to remove in total (ranked by importance)
    explicit: dict[int, list[int]] | None = None  # layer -> original head indices


def parse_heads(value, enc: Encoder, allow_empty: bool) -> HeadPlan:
    """Check a --heads value against the model up front: never more heads than exist, never a whole layer by accident."""
    layers, n = len(enc.layers), enc.original_heads()
    present = {i: enc.surviving_heads(i) for i in range(layers)}
    total = sum(len(v) for v in present.values())
    text = str(value).strip()
    if ":" in text:
        plan: dict[int, list[int]] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            layer_s, _, heads_s = part.partition(":")
            try:
                layer = int(layer_s)
                heads = [int(h) for h in heads_s.split(",") if h.strip()]
            except ValueError:
                raise BadInput(f"--heads {text!r}: expected LAYER:HEAD,HEAD;LAYER:HEAD (e.g. 0:1,2;3:0)") from None
            if not 0 <= layer < layers:
                raise BadInput(f"--heads: layer {layer} does not exist; the model has layers 0..{layers - 1}")
            bad = [h for h in heads if h not in present[layer]]
            if bad:
                raise BadInput(f"--heads: layer {layer} has no head {bad[0]}; its heads are {','.join(map(str, present[layer]))}")
            plan.setdefault(layer, [])
            plan[layer] = sorted(set(plan[layer]) | set(heads))
        for layer, heads in plan.items():
            if len(heads) >= len(present[layer]) and not allow_empty:
                raise BadInput(
                    f"--heads: this removes all {len(present[layer])} heads of layer {layer}; pass --allow-empty-layer if that is intended"
                )
        return HeadPlan(explicit=plan)
    try:
        x = float(text)
    except ValueError:
        raise BadInput(f"--heads {text!r}: give a fraction (0.2), a count (14) or a list LAYER:HEAD,HEAD;... (0:1,2;3:0)") from None
    if x != int(x) or 0 < x < 1:
        if not 0 < x < 1:
            raise BadInput(f"--heads {text}: a fraction must be between 0 and 1")
        count = int(round(x * total))
    else:
        count = int(x)
    if count <= 0:
        raise BadInput(f"--heads {text}: removes no head ({total} heads in {layers} layers)")
    if count > total:
        raise BadInput(f"--heads {text}: asks to remove {count} heads but the model has only {total} ({layers} layers x {n})")
    if count > total - layers and not allow_empty:
        raise BadInput(
            f"--heads {text}: removing {count} of {total} heads would empty a layer (at most {total - layers} keeps one per layer); "
            "pass --allow-empty-layer if that is intended"
        )
    return HeadPlan(count=count)


def _choose_heads(enc: Encoder, imp: list[np.ndarray], k: int, allow_empty: bool, silenced: set[int]) -> dict[int, list[int]]:
    """The ``k`` least important surviving heads, scores normalised per layer (Michel et al.), keeping one per layer unless allowed."""
    cands = []
    for layer, scores in enumerate(imp):
        if layer in silenced:
            continue
        norm = np.linalg.norm(scores) or 1.0
        orig = enc.surviving_heads(layer)
        cands += [(float(s / norm), layer, orig[i]) for i, s in enumerate(scores)]
    cands.sort()
    left = {layer: len(s) for layer, s in enumerate(imp)}
    out: dict[int, list[int]] = {}
    taken = 0
    for _, layer, head in cands:
        if taken >= k:
            break
        if left[layer] <= 1 and not allow_empty:
            continue
        out.setdefault(layer, []).append(head)
        left[layer] -= 1
        taken += 1
    return out


def _remove_heads(model, enc: Encoder, now: dict[int, list[int]], silenced: set[int]) -> None:
    """Physically remove heads; a layer losing all of them keeps one, zeroed and frozen (see ``silence_last_head``)."""
    emptied = {layer: heads[-1] for layer, heads in now.items() if len(heads) >= enc.num_heads(layer)}
    enc.remove_heads({layer: [h for h in heads if emptied.get(layer) != h] for layer, heads in now.items()})
    for layer in emptied:
        enc.silence_last_head(layer)
        silenced.add(layer)


def _choose_ffn(imp: list[np.ndarray], width: int) -> dict[int, list[int]]:
    """Per layer, the ``width`` most important neurons to keep."""
    return {layer: sorted(np.argsort(-scores, kind="stable")[:width].tolist()) for layer, scores in enumerate(imp)}


def _parse_layers(text: str) -> list[int]:
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"--keep-layers {text!r}: expected layer indices such as 0,2,4") from None


def prune(source: str, out: Path, opts: PruneOptions, *, force: bool = False) -> dict:
    """Prune ``source`` into the checkpoint directory ``out``; returns the compression record."""
    t0 = time.perf_counter()
    out = Path(out)
    check_output_dir(out.absolute(), force, model_io.is_output)
    if Path(source).exists():
        refuse_inside(out, Path(source), "the source model")
    importance = _check_options(opts)
    model, tok, src = model_io.load(source)
    enc = Encoder(model)
    params_before, layers_before = parameters(model), len(enc.layers)
    keep = _parse_layers(opts.keep_layers) if opts.keep_layers else None
    original = copy.deepcopy(model) if keep is not None and opts.eval_data else model  # accuracy "before" is the unpruned model's
    # recovery by self-distillation learns from the model as it was before any pruning
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if opts.recover_epochs > 0 and opts.recover_alpha < 1 else None
    if keep is not None:
        enc.keep_layers(keep)  # validates the indices
    plan = parse_heads(opts.heads, enc, opts.allow_empty_layer) if opts.heads else None
    if plan and plan.explicit and opts.steps > 1:
        raise BadInput("--steps spreads a fraction or count of heads over several rounds; an explicit head list is removed at once")
    train_set, eval_set = _data(model, tok, source, opts, importance)
    record = {"kind": "edgedeploy-compression", "method": "prune", "source": src.as_dict(), "settings": opts.recorded()}
    record |= {"importance": importance, "accuracy": {}, "rounds": []}
    if eval_set is not None:
        record["accuracy"]["before"] = textdata.accuracy(original, tok, eval_set)
        log.info("prune: accuracy before %.4f on %d rows of %s", record["accuracy"]["before"], len(eval_set), Path(opts.eval_data).name)
    del original
    rounds = _Rounds(model, tok, enc, opts, importance, plan, train_set, eval_set, teacher)
    for r in range(1, opts.steps + 1):
        record["rounds"].append(rounds.run(r, out, record))
    params_after = parameters(model)
    record["removed"] = rounds.removed_record() | {"layers_kept": keep, "layers_before": layers_before}
    record["parameters"] = {"before": params_before, "after": params_after, "reduction": 1 - params_after / params_before}
    if eval_set is not None:
        last = record["rounds"][-1]
        record["accuracy"]["after"] = last.get("accuracy_after_recovery", last["accuracy_after_prune"])
        record["accuracy"]["eval_rows"] = len(eval_set)
        record["accuracy"]["eval_file"] = str(Path(opts.eval_data).resolve())
        record["accuracy"]["provenance"] = "measured with PyTorch on this host"
    record["data"] = {"train": model_io.data_fingerprint(opts.train_data), "eval": model_io.data_fingerprint(opts.eval_data)}
    record["seconds"] = round(time.perf_counter() - t0, 1)
    model_io.publish(model, tok, out, record, force)
    return record


def _check_options(opts: PruneOptions) -> str:
    """Exit 2 for options that cannot work together; the importance measure to use."""
    if not (opts.heads or opts.ffn or opts.keep_layers):
        raise BadInput("nothing to prune: give --heads, --ffn and/or --keep-layers")
    if opts.steps < 1:
        raise BadInput(f"--steps {opts.steps}: must be 1 or more")
    if opts.ffn is not None and not 0 < opts.ffn < 1:
        raise BadInput(f"--ffn {opts.ffn}: the fraction of feed-forward neurons to remove must be between 0 and 1")
    importance = opts.importance or ("gradient" if opts.train_data else "magnitude")
    if importance not in ("gradient", "magnitude"):
        raise BadInput(f"--importance {importance!r}: use gradient or magnitude")
    if (importance == "gradient" or opts.recover_epochs) and not opts.train_data:
        raise BadInput(
            ("gradient importance" if importance == "gradient" else "--recover-epochs") + " needs labeled training text: give --train-data FILE"
        )
    if opts.recover_alpha < 1 and not opts.recover_epochs:
        raise BadInput(f"--recover-alpha {opts.recover_alpha} weighs the recovery loss: give --recover-epochs too")
    return importance


def _data(model, tok, source: str, opts: PruneOptions, importance: str):
    """(labeled training rows or None, labeled evaluation rows or None)."""
    train_set = eval_set = None
    if importance == "gradient" or opts.recover_epochs > 0:
        model_io.require_classifier(model, source, "gradient importance and recovery fine-tuning")
        model_io.require_tokenizer(tok, source)
        train_set = textdata.load(opts.train_data, model.config, text_column=opts.text_column, label_column=opts.label_column, need_labels=True)
    if opts.eval_data:
        model_io.require_classifier(model, source, "accuracy on --data")
        model_io.require_tokenizer(tok, source)
        eval_set = textdata.load(opts.eval_data, model.config, text_column=opts.text_column, label_column=opts.label_column, need_labels=True)
    return train_set, eval_set


class _Rounds:
    """Pruning in ``opts.steps`` rounds: each measures importance, removes its share of heads and
    feed-forward neurons, and (with --recover-epochs) fine-tunes to recover."""

    def __init__(self, model, tok, enc: Encoder, opts: PruneOptions, importance: str, plan, train_set, eval_set, teacher=None):
        self.model, self.tok, self.enc, self.opts, self.importance, self.plan = model, tok, enc, opts, importance, plan
        self.teacher = teacher  # the unpruned model, for recovery by self-distillation (--recover-alpha below 1)
        self.train_set, self.eval_set = train_set, eval_set
        self.recover_set = None
        if opts.recover_epochs > 0:
            self.recover_set = train_set if not opts.train_subset else textdata.load_training(opts, model.config, need_labels=True)
        self.total_heads = sum(len(enc.surviving_heads(i)) for i in range(len(enc.layers)))
        self.ffn_start = enc.ffn_width()
        self.ffn_target = int(round(self.ffn_start * (1 - opts.ffn))) if opts.ffn else self.ffn_start
        self.removed: dict[int, list[int]] = {}
        self.silenced: set[int] = set()

    def _accuracy(self):
        return textdata.accuracy(self.model, self.tok, self.eval_set) if self.eval_set is not None else None

    def run(self, r: int, out: Path, record: dict) -> dict:
        opts, enc = self.opts, self.enc
        rnd: dict = {"round": r}
        if self.importance == "gradient":
            rows = np.random.default_rng([opts.seed, 1000 + r]).permutation(len(self.train_set))[: opts.importance_samples]
            head_imp, ffn_imp = gradient(enc, textdata.batches(self.tok, self.train_set, rows, opts.batch_size, opts.max_length))
        else:
            head_imp, ffn_imp = magnitude(enc)
        now = self._heads_now(r, head_imp)
        if opts.ffn:
            width = int(round(self.ffn_start - (self.ffn_start - self.ffn_target) * r / opts.steps))
            enc.prune_ffn(_choose_ffn(ffn_imp, width))  # before the heads: ffn_imp indexes the current neurons
            rnd["ffn_width"] = width
        if now:
            _remove_heads(self.model, enc, now, self.silenced)
            for layer, heads in now.items():
                self.removed.setdefault(layer, []).extend(heads)
        rnd["heads_removed"] = {str(k): v for k, v in sorted(now.items())}
        rnd["parameters"] = parameters(self.model)
        if self.eval_set is not None:
            rnd["accuracy_after_prune"] = self._accuracy()
        if opts.recover_epochs > 0:
            self._recover(r, rnd, out, record)
        log.info("prune round %d/%d: %s", r, opts.steps, {k: v for k, v in rnd.items() if k != "recovery"})
        return rnd

    def _heads_now(self, r: int, head_imp) -> dict[int, list[int]]:
        plan = self.plan
        if plan and plan.explicit:
            now = plan.explicit
        elif plan:
            already = sum(len(v) for v in self.removed.values())
            target = int(round(plan.count * r / self.opts.steps)) - already
            now = _choose_heads(self.enc, head_imp, target, self.opts.allow_empty_layer, self.silenced)
        else:
            now = {}
        return {layer: sorted(heads) for layer, heads in now.items() if heads}

    def _recover(self, r: int, rnd: dict, out: Path, record: dict) -> None:
        """Fine-tune after round ``r``; a diverging run keeps the model before it in OUT.partial and stops."""
        opts, model, tok, recover_set = self.opts, self.model, self.tok, self.recover_set
        sched = Schedule(epochs=opts.recover_epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed + r, checkpoint_every=0)
        good = copy.deepcopy(model.state_dict())  # the pruned model before this recovery: kept if training diverges
        try:
            rnd["recovery"] = train(
                model,
                trainable(model),
                self._recovery_loss,
                len(recover_set),
                lambda order: textdata.batches(tok, recover_set, order, opts.batch_size, opts.max_length),
                sched,
                what=f"prune round {r}/{opts.steps}: recovery",
            )
        except Diverged as exc:
            model.load_state_dict(good)
            kept = out.absolute().with_name(out.name + ".partial")
            record["rounds"].append(rnd)
            record["diverged"] = {"round": r, "error": str(exc)}
            model_io.publish(model, tok, kept, record, force=True)
            raise Diverged(f"{exc}; the pruned model before this recovery is kept in {kept}") from None
        rnd["recovery"]["rows"] = len(recover_set)
        if self.eval_set is not None:
            rnd["accuracy_after_recovery"] = self._accuracy()

    def _recovery_loss(self, x, y):
        """The hard-label loss, mixed by --recover-alpha with the KL to the unpruned model's softened logits."""
        import torch

        if self.teacher is None:
            return self.model(**x, labels=y).loss
        with torch.no_grad():
            want = self.teacher(**x).logits
        return losses.logits(self.model(**x).logits, want, y, RECOVERY_TEMPERATURE, self.opts.recover_alpha)

    def removed_record(self) -> dict:
        return {
            "heads": {str(k): sorted(v) for k, v in sorted(self.removed.items())},
            "heads_total": sum(len(v) for v in self.removed.values()),
            "heads_before": self.total_heads,
            "emptied_layers": sorted(self.silenced),
            "ffn_width": [self.ffn_start, self.enc.ffn_width()],
        }
