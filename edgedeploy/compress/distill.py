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
    import torch

    t0 = time.perf_counter()
    out = Path(out)
    check_output_dir(out.absolute(), force, model_io.is_output)
    if Path(teacher).exists():
        refuse_inside(out, Path(teacher), "the source model")
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

    t_model, t_tok, t_src = model_io.load(teacher, "teacher")
    model_io.require_classifier(t_model, teacher, "a distillation teacher")
    model_io.require_tokenizer(t_tok, teacher)
    t_enc = Encoder(t_model)
    if opts.student:
        s_model, s_tok, s_src = model_io.load(opts.student, "--student")
        model_io.require_classifier(s_model, opts.student, "a distillation student")
        model_io.require_tokenizer(s_tok, opts.student)
        layer_map = evenly_spaced(len(Encoder(s_model).layers), len(t_enc.layers))
        student_from = {"model": s_src.as_dict()}
    else:
        layer_map = pick_layers(opts.student_layers, len(t_enc.layers))
        s_model, s_tok = copy.deepcopy(t_model), t_tok
        Encoder(s_model).keep_layers(layer_map)
        student_from = {"teacher_layers": layer_map}
    s_enc = Encoder(s_model)
    if s_model.config.num_labels != t_model.config.num_labels:
        raise BadInput(f"teacher has {t_model.config.num_labels} classes, student {s_model.config.num_labels}; they must match")
    need_labels = opts.alpha > 0
    train_set = textdata.load_training(opts, t_model.config, need_labels=need_labels)
    if opts.student:
        check_tokenizers(t_tok, s_tok, train_set.texts[:32], teacher, opts.student)
    if opts.hidden_weight and s_model.config.hidden_size != t_model.config.hidden_size:
        raise BadInput(
            f"--hidden-weight needs the same hidden size in teacher ({t_model.config.hidden_size}) and student ({s_model.config.hidden_size})"
        )
    heads = opts.relation_heads or t_model.config.num_attention_heads
    if opts.attention_weight:
        widths = {"teacher": t_enc.part(len(t_enc.layers) - 1, "q").out_features, "student": s_enc.part(len(s_enc.layers) - 1, "q").out_features}
        bad = {k: w for k, w in widths.items() if w % heads}
        if bad:
            raise BadInput(f"--relation-heads {heads}: does not divide the attention width of the {', '.join(f'{k} ({w})' for k, w in bad.items())}")
    eval_set = (
        textdata.load(opts.eval_data, t_model.config, text_column=opts.text_column, label_column=opts.label_column, need_labels=True)
        if opts.eval_data
        else None
    )

    t_model.eval().requires_grad_(False)
    t_store, s_store = [], []
    if opts.attention_weight:
        _qkv_hooks(t_enc, t_store)
        _qkv_hooks(s_enc, s_store)
    want_hidden = bool(opts.hidden_weight)

    def loss_terms(x, y):
        t_store.clear()
        s_store.clear()
        with torch.no_grad():
            t_out = t_model(**x, output_hidden_states=want_hidden)
        s_out = s_model(**x, output_hidden_states=want_hidden)
        terms = {"logits": losses.logits(s_out.logits, t_out.logits, y, opts.temperature, opts.alpha)}
        if want_hidden:
            terms["hidden"] = opts.hidden_weight * losses.hidden(s_out.hidden_states, t_out.hidden_states, layer_map, x["attention_mask"])
        if opts.attention_weight:
            terms["relations"] = opts.attention_weight * losses.relations(s_store, t_store, x["attention_mask"], heads)
        return terms

    def loss_fn(x, y):
        return sum(loss_terms(x, y).values())

    # a fixed held-out probe of the distillation loss, before and after (eval mode, no dropout)
    probe_rows = np.random.default_rng([opts.seed, 7]).permutation(len(train_set))[: min(256, len(train_set))]

    def probe() -> dict:
        s_model.eval()
        sums: dict[str, float] = {}
        n = 0
        with torch.no_grad():
            for x, y in textdata.batches(t_tok, train_set, probe_rows, opts.batch_size, opts.max_length):
                for k, v in loss_terms(x, y).items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(next(iter(x.values())))
                n += len(next(iter(x.values())))
        return {k: v / n for k, v in sums.items()} | {"total": sum(sums.values()) / n}

    record = {
        "kind": "edgedeploy-compression",
        "method": "distill",
        "teacher": t_src.as_dict(),
        "student": student_from,
        "settings": opts.recorded(),
        "layer_map": layer_map,
        "accuracy": {},
    }
    if eval_set is not None:
        # before/after as in prune records: the model that goes in (the teacher) and the one that comes out
        record["accuracy"]["before"] = textdata.accuracy(t_model, t_tok, eval_set)
        record["accuracy"]["initial"] = textdata.accuracy(s_model, t_tok, eval_set)  # the student before training
    record["loss_before"] = probe()
    ckpt = out.absolute().with_name(out.name + ".partial")

    teacher_files = [model_io.data_fingerprint(f) for f in [t_src.path / "config.json", *weight_files(t_src.path)]]
    fingerprint = {
        "teacher": teacher_files,
        "settings": opts.recorded(),
        "student_from": student_from,
        "data": model_io.data_fingerprint(opts.train_data),
    }
    sched = Schedule(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed, checkpoint_every=opts.checkpoint_every)
    record["training"] = train(
        s_model,
        trainable(s_model),
        loss_fn,
        len(train_set),
        lambda order: textdata.batches(t_tok, train_set, order, opts.batch_size, opts.max_length),
        sched,
        what="distill",
        ckpt_dir=ckpt,
        fingerprint=fingerprint,
        resume=resume,
    )
    record["training"]["rows"] = len(train_set)
    record["loss_after"] = probe()
    if eval_set is not None:
        record["accuracy"]["after"] = textdata.accuracy(s_model, t_tok, eval_set)
        record["accuracy"]["eval_rows"] = len(eval_set)
        record["accuracy"]["provenance"] = "measured with PyTorch on this host"
    record["parameters"] = {"before": parameters(t_model), "after": parameters(s_model), "reduction": 1 - parameters(s_model) / parameters(t_model)}
    record["data"] = {"train": model_io.data_fingerprint(opts.train_data), "eval": model_io.data_fingerprint(opts.eval_data)}
    record["seconds"] = round(time.perf_counter() - t0, 1)
    model_io.publish(s_model, t_tok, out, record, force)
    shutil.rmtree(ckpt, ignore_errors=True)
    return record
