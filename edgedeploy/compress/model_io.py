"""Load a compressible model from any SOURCE ``edgedeploy export`` accepts, and publish a
compressed one as a normal Hugging Face checkpoint directory plus ``compression.json``."""

from __future__ import annotations

import json
from pathlib import Path

from edgedeploy.compress.reference import materialize
from edgedeploy.core.artifact import sha256_file
from edgedeploy.core.atomic import staged_directory
from edgedeploy.core.errors import BadInput
from edgedeploy.core.sources import resolve
from edgedeploy.exporters.encoder_parts import from_pretrained

RECORD = "compression.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def is_classifier(path: Path) -> bool:
    cfg = json.loads((Path(path) / "config.json").read_text())
    return any(a.endswith("ForSequenceClassification") for a in cfg.get("architectures") or ())


def load(source: str, what: str = "SOURCE"):
    """(model, tokenizer or None, resolved Source) in eval mode."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    src = materialize(resolve(source))
    if src.kind != "huggingface":
        raise BadInput(f"{what} {source}: pruning and distillation need a Hugging Face model directory (this is {src.kind})")
    cls = AutoModelForSequenceClassification if is_classifier(src.path) else AutoModel
    model = from_pretrained(cls, src.path, local_files_only=True)
    tok = None
    if any((src.path / f).is_file() for f in TOKENIZER_FILES):
        tok = AutoTokenizer.from_pretrained(str(src.path), local_files_only=True)
    return model.eval(), tok, src


def require_classifier(model, source: str, why: str) -> None:
    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise BadInput(
            f"{source}: {why} needs a sequence classifier (a *ForSequenceClassification model with a task head); this is an encoder without one"
        )


def require_tokenizer(tok, source: str) -> None:
    if tok is None:
        raise BadInput(f"{source}: has no tokenizer files (tokenizer.json or vocab.txt); training on text needs one")


def is_output(path: Path) -> bool:
    return (Path(path) / RECORD).is_file()


def publish(model, tok, out: Path, record: dict, force: bool) -> Path:
    with staged_directory(out, force=force, is_artifact=is_output) as stage:
        model.save_pretrained(stage, safe_serialization=True)
        if tok is not None:
            tok.save_pretrained(stage)
        (stage / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return Path(out)


def data_fingerprint(path) -> dict | None:
    if not path:
        return None

    return {"file": str(Path(path).resolve()), "sha256": sha256_file(Path(path))}
