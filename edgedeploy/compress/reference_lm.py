"""The reference language model (``reference:lm``, ``make reference-lm``): no pretrained decoder
can be downloaded here, so a small Llama-style causal LM is trained from scratch on the text of
SST-2's training split.

4 layers, hidden 256, grouped-query attention (8 query heads, 2 key/value heads), tied
embeddings, a 4,096-entry BPE tokenizer trained on the same text (``lm_tokenizer``). Seeded and
deterministic; cached like the reference classifiers (``$EDGEDEPLOY_CACHE``) under a key of the
plan, the training file's sha256 and the torch/transformers versions, with its dev perplexity
in ``reference.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgedeploy.compress.lm_tokenizer import stream, train_tokenizer
from edgedeploy.compress.train import Schedule, train
from edgedeploy.core.artifact import file_sha256
from edgedeploy.core.atomic import staged_directory
from edgedeploy.core.errors import BadInput, ValidationFailed
from edgedeploy.data.datasets import read_texts

log = logging.getLogger("edgedeploy")
RECORD = "reference.json"
RECIPE_VERSION = 2  # 2: the deterministic (Metaspace) BPE tokenizer


@dataclass(frozen=True)
class LMPlan:
    """How the reference LM is built (part of its cache key)."""

    vocab_size: int = 4096
    hidden: int = 256
    layers: int = 4
    heads: int = 8
    kv_heads: int = 2
    intermediate: int = 512  # a multiple of 256: every int4 algorithm (k-quant, GPTQ) takes its blocks
    max_positions: int = 256
    block: int = 128  # training sequence length (tokens)
    batch: int = 16
    epochs: float = 1.5  # 262 s of training on this project's 2 cores (the budget is 8 min)
    lr: float = 2e-3
    warmup: float = 0.03
    seed: int = 0
    max_dev_perplexity: float = 400.0


def blocks(ids: np.ndarray, size: int) -> np.ndarray:
    n = len(ids) // size
    return ids[: n * size].reshape(n, size)


def key(plan: LMPlan, train_file: Path) -> str:
    import torch
    import transformers

    parts = {"recipe_version": RECIPE_VERSION, "plan": asdict(plan), "train_sha256": file_sha256(train_file)}
    parts |= {"torch": torch.__version__, "transformers": transformers.__version__}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def dev_perplexity(model, dev: np.ndarray) -> float:
    import torch

    nll, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(dev), 32):
            x = torch.from_numpy(dev[i : i + 32])
            logits = model(input_ids=x).logits[:, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None])[..., 0]
            nll -= float(lp.sum())
            n += lp.numel()
    return math.exp(nll / n)


def _model(plan: LMPlan, tok):
    """A freshly initialised Llama-style decoder of ``plan``'s shape (GQA, tied embeddings)."""
    import transformers as tf

    cfg = tf.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=plan.hidden,
        intermediate_size=plan.intermediate,
        num_hidden_layers=plan.layers,
        num_attention_heads=plan.heads,
        num_key_value_heads=plan.kv_heads,
        max_position_embeddings=plan.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return tf.LlamaForCausalLM(cfg)


def build(out: Path, train_file: Path, dev_file: Path, plan: LMPlan = LMPlan(), key_: str | None = None) -> dict:
    """Train the reference LM per ``plan`` into ``out`` (a Hugging Face checkpoint with its
    tokenizer and ``reference.json``)."""
    import torch

    for f in (train_file, dev_file):
        if not Path(f).is_file():
            raise BadInput(
                f"{f}: missing; the reference LM trains on ../shared/datasets/sst2 (set EDGEDEPLOY_DATASETS=DIR, the folder holding sst2/ and banking77/)"
            )
    t0 = time.perf_counter()
    texts = read_texts(train_file, "text", 10**9)
    with staged_directory(out, force=True, is_artifact=lambda p: (p / RECORD).is_file()) as stage:
        tok = train_tokenizer(texts, plan.vocab_size, stage, limit_alphabet=100)
        train_blocks = blocks(stream(tok, texts), plan.block)
        dev_blocks = blocks(stream(tok, read_texts(dev_file, "text", 10**9)), plan.block)
        torch.manual_seed(plan.seed)
        model = _model(plan, tok)
        schedule = Schedule(epochs=plan.epochs, batch_size=plan.batch, lr=plan.lr, seed=plan.seed, warmup=plan.warmup, checkpoint_every=0)

        def batches(order):
            for i in range(0, len(order), plan.batch):
                x = torch.from_numpy(train_blocks[order[i : i + plan.batch]])
                yield {"input_ids": x}, x

        log.info("reference LM: %d parameters, %d training blocks of %d tokens", model.num_parameters(), len(train_blocks), plan.block)
        run = train(
            model, list(model.parameters()), lambda x, y: model(**x, labels=y).loss, len(train_blocks), batches, schedule, what="reference LM"
        )
        ppl = dev_perplexity(model, dev_blocks)
        log.info("reference LM: dev perplexity %.2f after %.0f s", ppl, time.perf_counter() - t0)
        if not ppl <= plan.max_dev_perplexity:
            raise ValidationFailed(f"reference LM: dev perplexity {ppl:.1f} is above {plan.max_dev_perplexity}; nothing was written")
        record = {
            "task": "lm",
            "key": key_,
            "plan": asdict(plan),
            "architecture": "LlamaForCausalLM (GQA, tied embeddings)",
            "parameters": int(model.num_parameters()),
            "tokenizer": f"BPE, {len(tok)} entries, lower-cased, trained on {Path(train_file).name} (edgedeploy.compress.lm_tokenizer)",
            "train_file": str(Path(train_file).resolve()),
            "dev_file": str(Path(dev_file).resolve()),
            "train_tokens": int(train_blocks.size),
            "dev_tokens": int(dev_blocks.size),
            "dev_perplexity": ppl,
            "train_seconds": round(time.perf_counter() - t0, 1),
            "steps": run["steps"],
            "threads": torch.get_num_threads(),
        }
        model.save_pretrained(stage, safe_serialization=True)
        (stage / RECORD).write_text(json.dumps(record, indent=2))
    return record
