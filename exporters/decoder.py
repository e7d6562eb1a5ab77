"""Validation of a decoder exported with a KV cache (``text-generation-with-past``).

Two parts, both against the PyTorch model it came from:
1. logits: the prompt's logits through the ONNX model from an empty past match PyTorch's, at
   two prompt lengths (the usual atol/rtol comparison);
2. tokens: greedy generation of ``new_tokens`` through the ONNX KV-cache loop (the torch-free
   runtime's, the same one `bench --generate` times) equals ``model.generate`` token for token.
"""

from __future__ import annotations

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.exporters.validate import ValidationResult, compare_arrays
from edgedeploy.runtimes.errors import JobError
from edgedeploy.runtimes.generate import Decoder
from edgedeploy.runtimes.session import cpu_session

PROMPTS = (8, 3)
NEW_TOKENS = 8
GENERATION_TASKS = ("text-generation-with-past",)


def is_decoder_task(task: str | None) -> bool:
    return task in GENERATION_TASKS


def prompts(vocab_size: int, lengths=PROMPTS, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    low = 3 if vocab_size > 8 else 0  # keep clear of the special ids most tokenizers put first
    return [rng.integers(low, vocab_size, size=(1, n), dtype=np.int64) for n in lengths]


def validate_decoder(onnx_path, model, atol: float, rtol: float, new_tokens: int = NEW_TOKENS) -> tuple[ValidationResult, dict]:
    """(logits comparison, token comparison) of the exported decoder against ``model``."""
    import torch

    try:
        dec = Decoder(cpu_session(onnx_path))
    except JobError as exc:
        raise BadInput(f"the exported decoder has no usable KV cache: {exc}") from None
    result = ValidationResult(atol=atol, rtol=rtol)
    generation = {"new_tokens": new_tokens, "cases": []}
    text = text_config(model.config)
    for ids in prompts(int(text.vocab_size)):
        with torch.inference_mode():
            want = model(input_ids=torch.from_numpy(ids)).logits.numpy()
            gen = model.generate(
                torch.from_numpy(ids),
                attention_mask=torch.ones_like(torch.from_numpy(ids)),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # end-of-text suppressed, in the ONNX loop too: every token is compared
                do_sample=False,
                num_beams=1,
                pad_token_id=text.eos_token_id if text.pad_token_id is None else text.pad_token_id,
            )
        got = dec.prefill_logits(ids)
        result.cases.append({"inputs": {"input_ids": list(ids.shape), "past": 0}, "outputs": [compare_arrays("logits", got, want, atol, rtol)]})
        torch_tokens = [int(t) for t in gen[0, ids.shape[1] :]]
        onnx_tokens = dec.greedy(ids, new_tokens, suppress=eos_ids(text))["tokens"]
        generation["cases"].append(token_case(onnx_tokens, torch_tokens, prompt_tokens=int(ids.shape[1])))
    generation["passed"] = all(c["match"] for c in generation["cases"])
    return result, generation


def token_case(onnx_tokens: list[int], torch_tokens: list[int], **about) -> dict:
    """One generation comparison for the manifest: both token lists, whether they match, and where they first differ."""
    first_diff = next((i for i, (a, b) in enumerate(zip(onnx_tokens, torch_tokens)) if a != b), None)
    return {**about, "onnx": onnx_tokens, "torch": torch_tokens, "match": onnx_tokens == torch_tokens, "first_difference": first_diff}


def text_config(config):
    """The language model's own settings: a vision-language config (Gemma 3) nests them in
    ``text_config``; a plain decoder's config is its own."""
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def eos_ids(config) -> list[int]:
    eos = getattr(config, "eos_token_id", None)
    ids = eos if isinstance(eos, list) else [eos]
    return [i for i in ids if isinstance(i, int) and 0 <= i < int(config.vocab_size)]
