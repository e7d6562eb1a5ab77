"""``edgedeploy distill``: knowledge distillation from a teacher classifier into a student.

The student is the teacher with a subset of its layers (``--student-layers 2`` picks evenly
spaced layers, ``--student-layers 0,2,4`` names them) or a given model sharing the teacher's
tokenizer. The loss mixes hard labels and the teacher's softened logits, optionally plus
hidden-state and MiniLM-style attention-relation terms (see ``losses``). Training is seeded
and deterministic, checkpoints every ``checkpoint_every`` steps into ``OUT.partial/`` and
resumes from there with ``resume=True``.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.compress import data as textdata
from edgedeploy.compress import losses, model_io
from edgedeploy.compress.options import DistillOptions
from edgedeploy.compress.train import Schedule, train, trainable
from edgedeploy.core.atomic import check_output_dir, refuse_inside
from edgedeploy.core.errors import BadInput
from edgedeploy.exporters.encoder_parts import Encoder, parameters
from edgedeploy.exporters.safe_load import weight_files

log = logging.getLogger("edgedeploy")


def evenly_spaced(n: int, total: int) -> list[int]:
    """``n`` of ``total`` layers, evenly spaced and always ending at the last (6 -> 3: 1,3,5; 6 -> 2: 2,5)."""
    return [round((i + 1) * total / n) - 1 for i in range(n)]


def pick_layers(spec: str, teacher_layers: int) -> list[int]:
    text = str(spec).strip()
    try:
        if "," in text:
            layers = [int(x) for x in text.split(",") if x.strip()]
        else:
            n = int(text)
            if not 1 <= n <= teacher_layers:
                raise BadInput(f"--student-layers {n}: the teacher has {teacher_layers} layers; give 1 to {teacher_layers}")
            layers = evenly_spaced(n, teacher_layers)
    except ValueError:
        raise BadInput(f"--student-layers {text!r}: give a count (2) or teacher layer indices (0,2,4)") from None
    if sorted(set(layers)) != layers or not all(0 <= i < teacher_layers for i in layers):
        raise BadInput(f"--student-layers {text}: give increasing, distinct teacher layers from 0 to {teacher_layers - 1}")
    return layers


def check_tokenizers(teacher_tok, student_tok, texts: list[str], teacher: str, student: str) -> None:
    """Distillation compares outputs token by token: both models must see the same ids."""
    tv, sv = teacher_tok.get_vocab(), student_tok.get_vocab()
    if tv != sv:
        raise BadInput(
            f"teacher {teacher} and student {student} have different tokenizers ({len(tv)} vs {len(sv)} vocabulary entries"
            f"{', same size but different ids' if len(tv) == len(sv) else ''}); distillation needs a shared tokenizer"
        )
    for i, t in enumerate(texts):
        if teacher_tok(t)["input_ids"] != student_tok(t)["input_ids"]:
            raise BadInput(
                f"teacher {teacher} and student {student} tokenize row {i + 1} differently (normalisation or special tokens); "
                "distillation needs a shared tokenizer"
            )


def _qkv_hooks(enc: Encoder, store: list):
    """Capture the last layer's query/key/value projections (MiniLMv2 relations)."""
    last = len(enc.layers) - 1
    return [enc.part(last, p).register_forward_hook(lambda _m, _i, out: store.append(out)) for p in ("q", "k", "v")]


def distill(teacher: str, out: Path, opts: DistillOptions, *, force: bool = False, resume: bool | str = False) -> dict:
    t0 = time.perf_counter()
    out = Path(out)
    check_output_dir(out.absolute(), force, model_io.is_output)
    if Path(teacher).exists():
        refuse_inside(out, Path(teacher), "the source model")
    _check_options(opts)
    pair = _Pair.load(teacher, opts)
    pair.check(opts)
    train_set = textdata.load_training(opts, pair.t_model.config, need_labels=opts.alpha > 0)
    if opts.student:
        check_tokenizers(pair.t_tok, pair.s_tok, train_set.texts[:32], teacher, opts.student)
    eval_set = (
        textdata.load(opts.eval_data, pair.t_model.config, text_column=opts.text_column, label_column=opts.label_column, need_labels=True)
        if opts.eval_data
        else None
    )
    loss = _Loss(pair, opts, train_set)
    record = {
        "kind": "edgedeploy-compression",
        "method": "distill",
        "teacher": pair.t_src.as_dict(),
        "student": pair.student_from,
        "settings": opts.recorded(),
        "layer_map": pair.layer_map,
        "accuracy": {},
    }
    if eval_set is not None:
        # before/after as in prune records: the model that goes in (the teacher) and the one that comes out
        record["accuracy"]["before"] = textdata.accuracy(pair.t_model, pair.t_tok, eval_set)
        record["accuracy"]["initial"] = textdata.accuracy(pair.s_model, pair.t_tok, eval_set)  # the student before training
    record["loss_before"] = loss.probe()
    ckpt = out.absolute().with_name(out.name + ".partial")
    record["training"] = _train(pair, opts, loss, train_set, ckpt, resume)
    record["loss_after"] = loss.probe()
    if eval_set is not None:
        record["accuracy"]["after"] = textdata.accuracy(pair.s_model, pair.t_tok, eval_set)
        record["accuracy"]["eval_rows"] = len(eval_set)
        record["accuracy"]["provenance"] = "measured with PyTorch on this host"
    before, after = parameters(pair.t_model), parameters(pair.s_model)
    record["parameters"] = {"before": before, "after": after, "reduction": 1 - after / before}
    record["data"] = {"train": model_io.data_fingerprint(opts.train_data), "eval": model_io.data_fingerprint(opts.eval_data)}
    record["seconds"] = round(time.perf_counter() - t0, 1)
    model_io.publish(pair.s_model, pair.t_tok, out, record, force)
    shutil.rmtree(ckpt, ignore_errors=True)
    return record


def _check_options(opts: DistillOptions) -> None:
    if bool(opts.student) == bool(opts.student_layers):
        raise BadInput("give exactly one of --student DIR or --student-layers N|LIST")
    if not opts.train_data:
        raise BadInput("--train-data FILE is required: the text to distill on")
    if opts.temperature <= 0:
        raise BadInput(f"--temperature {opts.temperature}: must be above 0")
    if not 0 <= opts.alpha <= 1:
        raise BadInput(f"--alpha {opts.alpha}: the weight of the hard-label loss must be between 0 and 1")
    if opts.epochs <= 0:
        raise BadInput(f"--epochs {opts.epochs}: must be above 0")


@dataclass
class _Pair:
    """The teacher and the student (a given model, or the teacher's chosen layers)."""

    t_model: object
    t_tok: object
    t_src: object
    s_model: object
    s_tok: object
    layer_map: list[int]
    student_from: dict

    @classmethod
    def load(cls, teacher: str, opts: DistillOptions) -> _Pair:
        t_model, t_tok, t_src = model_io.load(teacher, "teacher")
        model_io.require_classifier(t_model, teacher, "a distillation teacher")
        model_io.require_tokenizer(t_tok, teacher)
        t_layers = len(Encoder(t_model).layers)
        if opts.student:
            s_model, s_tok, s_src = model_io.load(opts.student, "--student")
            model_io.require_classifier(s_model, opts.student, "a distillation student")
            model_io.require_tokenizer(s_tok, opts.student)
            layer_map = evenly_spaced(len(Encoder(s_model).layers), t_layers)
            student_from = {"model": s_src.as_dict()}
        else:
            layer_map = pick_layers(opts.student_layers, t_layers)
            s_model, s_tok = copy.deepcopy(t_model), t_tok
            Encoder(s_model).keep_layers(layer_map)
            student_from = {"teacher_layers": layer_map}
        return cls(t_model, t_tok, t_src, s_model, s_tok, layer_map, student_from)

    def check(self, opts: DistillOptions) -> None:
        """Exit 2 for a pair the chosen losses cannot compare."""
        t, s = self.t_model.config, self.s_model.config
        if s.num_labels != t.num_labels:
            raise BadInput(f"teacher has {t.num_labels} classes, student {s.num_labels}; they must match")
        if opts.hidden_weight and s.hidden_size != t.hidden_size:
            raise BadInput(f"--hidden-weight needs the same hidden size in teacher ({t.hidden_size}) and student ({s.hidden_size})")
        if opts.attention_weight:
            heads = opts.relation_heads or t.num_attention_heads
            widths = {name: _q_width(Encoder(m)) for name, m in (("teacher", self.t_model), ("student", self.s_model))}
            bad = {k: w for k, w in widths.items() if w % heads}
            if bad:
                raise BadInput(
                    f"--relation-heads {heads}: does not divide the attention width of the {', '.join(f'{k} ({w})' for k, w in bad.items())}"
                )


def _q_width(enc: Encoder) -> int:
    return enc.part(len(enc.layers) - 1, "q").out_features


class _Loss:
    """The distillation loss and its terms, and a fixed held-out probe of it (eval mode, no dropout)."""

    def __init__(self, pair: _Pair, opts: DistillOptions, train_set):
        self.pair, self.opts, self.train_set = pair, opts, train_set
        self.heads = opts.relation_heads or pair.t_model.config.num_attention_heads
        pair.t_model.eval().requires_grad_(False)
        self.t_store: list = []
        self.s_store: list = []
        if opts.attention_weight:
            _qkv_hooks(Encoder(pair.t_model), self.t_store)
            _qkv_hooks(Encoder(pair.s_model), self.s_store)
        self.probe_rows = np.random.default_rng([opts.seed, 7]).permutation(len(train_set))[: min(256, len(train_set))]

    def terms(self, x, y) -> dict:
        import torch

        o, want_hidden = self.opts, bool(self.opts.hidden_weight)
        self.t_store.clear()
        self.s_store.clear()
        with torch.no_grad():
            t_out = self.pair.t_model(**x, output_hidden_states=want_hidden)
        s_out = self.pair.s_model(**x, output_hidden_states=want_hidden)
        terms = {"logits": losses.logits(s_out.logits, t_out.logits, y, o.temperature, o.alpha)}
        if want_hidden:
            terms["hidden"] = o.hidden_weight * losses.hidden(s_out.hidden_states, t_out.hidden_states, self.pair.layer_map, x["attention_mask"])
        if o.attention_weight:
            terms["relations"] = o.attention_weight * losses.relations(self.s_store, self.t_store, x["attention_mask"], self.heads)
        return terms

    def __call__(self, x, y):
        return sum(self.terms(x, y).values())

    def probe(self) -> dict:
        import torch

        self.pair.s_model.eval()
        sums: dict[str, float] = {}
        n = 0
        with torch.no_grad():
            for x, y in textdata.batches(self.pair.t_tok, self.train_set, self.probe_rows, self.opts.batch_size, self.opts.max_length):
                rows = len(next(iter(x.values())))
                for k, v in self.terms(x, y).items():
                    sums[k] = sums.get(k, 0.0) + float(v) * rows
                n += rows
        return {k: v / n for k, v in sums.items()} | {"total": sum(sums.values()) / n}


def _train(pair: _Pair, opts: DistillOptions, loss: _Loss, train_set, ckpt: Path, resume) -> dict:
    """Train the student, checkpointing into ``ckpt`` under a fingerprint of what it was started with."""
    teacher_files = [model_io.data_fingerprint(f) for f in [pair.t_src.path / "config.json", *weight_files(pair.t_src.path)]]
    fingerprint = {
        "teacher": teacher_files,
        "settings": opts.recorded(),
        "student_from": pair.student_from,
        "data": model_io.data_fingerprint(opts.train_data),
    }
    sched = Schedule(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed, checkpoint_every=opts.checkpoint_every)
    run = train(
        pair.s_model,
        trainable(pair.s_model),
        loss,
        len(train_set),
        lambda order: textdata.batches(pair.t_tok, train_set, order, opts.batch_size, opts.max_length),
        sched,
        what="distill",
        ckpt_dir=ckpt,
        fingerprint=fingerprint,
        resume=resume,
    )
    run["rows"] = len(train_set)
    return run
