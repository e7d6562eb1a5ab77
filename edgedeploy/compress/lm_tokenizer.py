"""A small BPE tokenizer trained on the text a language model learns from (the reference LM's,
and the tiny test decoders'), saved as a Hugging Face fast tokenizer (tokenizer.json)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: unknown, beginning and end of text


def train_tokenizer(texts: list[str], vocab_size: int, dest: Path, limit_alphabet: int = 64):
    """Train a lower-cased, whitespace-split BPE tokenizer with ``vocab_size`` entries on
    ``texts`` and save it to ``dest``; returns the ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Word starts are marked with "▁" (Metaspace, as SentencePiece does) rather than an end-of-word
    # suffix: the trainer numbers suffixed tokens in hash-map order, which breaks merge ties
    # differently from run to run (huggingface/tokenizers#1794); the plain alphabet is sorted.
    tok = Tokenizer(models.BPE(unk_token=SPECIALS[0]))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), limit_alphabet=limit_alphabet, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=SPECIALS[0], bos_token=SPECIALS[1], eos_token=SPECIALS[2], pad_token=SPECIALS[2])
    Path(dest).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(dest))
    return fast


def stream(tok, texts: list[str]) -> np.ndarray:
    """Every text's ids, each followed by the end-of-text id where the tokenizer has one."""
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    ids: list[int] = []
    for t in texts:
        ids += tok(t, add_special_tokens=False)["input_ids"] + eos
    return np.asarray(ids, dtype=np.int64)
