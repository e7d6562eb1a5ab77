"""Decoders with a KV cache: export validated by generated tokens, greedy generation in the
torch-free runtime, and `bench --generate`. Tiny random models of each family, real ONNX
Runtime sessions."""

import json

import numpy as np
import onnx
import pytest
from conftest import SST2_DEV, cli, one_line_error
from hf_configs import DECODERS, build

from edgedeploy.core.artifact import Artifact
from edgedeploy.runtimes import generate, session


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    """{family: (source dir, artifact exported with past)}, built once."""
    root = tmp_path_factory.mktemp("decoders")
    out = {}
    for arch in DECODERS:
        src = build(arch, root / f"{arch}-src")
        cli("export", src, "-o", root / arch, "--task", "text-generation-with-past", check=0)
        out[arch] = (src, root / arch)
    return out


@pytest.mark.parametrize("arch", DECODERS)
def test_decoders_export_with_past_and_generate_what_pytorch_generates(decoders, arch):
    art = Artifact.load(decoders[arch][1])
    m = art.manifest
    assert art.verify() == [] and m["source"]["task"] == "text-generation-with-past"
    v = m["validation"]
    assert v["passed"] and len(v["cases"]) == 2 and v["max_abs_diff"] < 1e-3  # logits at two prompt lengths
    gen = v["generation"]
    assert gen["passed"] and [c["prompt_tokens"] for c in gen["cases"]] == [8, 3]
    assert all(c["onnx"] == c["torch"] and len(c["torch"]) >= 1 for c in gen["cases"])
    assert any(len(set(c["torch"])) > 1 for c in gen["cases"])  # the tokens depend on the context, so the cache is exercised
    names = {i.name for i in onnx.load(str(art.model_path), load_external_data=False).graph.input}
    assert {"input_ids", "past_key_values.0.key", "past_key_values.1.value"} <= names
    assert m["generation"]["kv_cache"] and m["generation"]["layers"] == 2 and m["generation"]["max_positions"] == 64


def test_io_binding_and_plain_runs_generate_the_same_tokens(decoders):
    dec = generate.Decoder(session.cpu_session(Artifact.load(decoders["llama"][1]).model_path))
    prompt = np.arange(5, 15, dtype=np.int64)[None, :]
    bound = dec.greedy(prompt, 12)
    dec.binding = False
    plain = dec.greedy(prompt, 12)
    assert bound["tokens"] == plain["tokens"] and len(bound["tokens"]) == 12 and len(bound["step_s"]) == 11


def test_bench_generate_reports_ttft_and_tokens_per_second(decoders, tmp_path):
    proc = cli(
        "bench",
        decoders["qwen2"][1],
        "--generate",
        "--prompt-tokens",
        "16",
        "--new-tokens",
        "8",
        "--iterations",
        "5",
        "--warmup",
        "1",
        "--json",
        check=0,
    )
    res = json.loads(proc.stdout)["results"][0]
    g = res["generation"]
    assert g["prompt_tokens"] == 16 and g["new_tokens"] == 8 and g["runs"] == 5 and g["io_binding"]
    assert g["ttft_ms"]["p50"] > 0 and g["prefill_tokens_per_s"] > 0 and g["decode_tokens_per_s"] > 0
    assert g["inter_token_ms"]["p50"] > 0 and res["peak_rss_mb"] > 0 and res["init_ms"] > 0


def test_a_decoder_without_past_cannot_generate(decoders, tmp_path):
    src = decoders["gpt2"][0]
    cli("export", src, "-o", tmp_path / "nopast", "--task", "text-generation", check=0)
    proc = cli("bench", tmp_path / "nopast", "--generate", "--iterations", "2", check=2)
    assert "--task text-generation-with-past" in one_line_error(proc)


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--prompt-tokens", "0"], "--prompt-tokens: must be >= 1"),
        (["--new-tokens", "0"], "--new-tokens: must be >= 1"),
        (["--prompt-tokens", "60", "--new-tokens", "8"], "exceed the model's 64 positions"),
        (["--baseline", "torch"], "does not apply to --generate"),
    ],
)
def test_bad_generation_lengths_exit_2(decoders, args, expect):
    proc = cli("bench", decoders["llama"][1], "--generate", "--iterations", "2", *args, check=2)
    assert expect in one_line_error(proc)


def test_with_past_on_an_encoder_says_what_optimum_can(tmp_path):
    src = build("bert", tmp_path / "bert-src")
    proc = cli("export", src, "-o", tmp_path / "x", "--task", "text-generation-with-past", check=2)
    assert "cannot export 'bert' as text-generation-with-past" in one_line_error(proc)
    assert not (tmp_path / "x").exists()


def test_perplexity_on_real_text_with_a_sliding_window(decoders, tmp_path):
    from edgedeploy.core.adopt import open_model
    from edgedeploy.quality.perplexity import perplexity

    art = decoders["llama"][1]
    proc = cli("eval", art, "--metric", "perplexity", "--data", SST2_DEV, "--limit", "40", "--json", check=0)
    doc = json.loads(proc.stdout)
    assert doc["metric"] == "perplexity" and doc["window"] == 64 and doc["stride"] == 32
    assert doc["scored_tokens"] == doc["tokens"] - 1 > 64  # every token but the first, across several windows
    assert doc["perplexity"] == pytest.approx(np.exp(doc["mean_nll"])) and doc["perplexity"] > 1
    # the same windows scored by the PyTorch source model give the same perplexity
    import torch
    import transformers as tf

    from edgedeploy.quality.perplexity import token_stream, windows

    ids = token_stream(open_model(art), SST2_DEV, "text", 40)
    model = tf.AutoModelForCausalLM.from_pretrained(str(decoders["llama"][0])).eval()
    nll = 0.0
    with torch.inference_mode():
        for start, end, first in windows(len(ids), 64, 32):
            logp = torch.log_softmax(model(input_ids=torch.from_numpy(ids[None, start:end])).logits[0].double(), -1)
            nll -= sum(float(logp[p - start - 1, ids[p]]) for p in range(first, end))
    assert doc["perplexity"] == pytest.approx(np.exp(nll / (len(ids) - 1)), rel=1e-4)
    # context matters, so a shorter window scores the same tokens with another perplexity
    short = perplexity(open_model(art), SST2_DEV, limit=40, window=4, stride=2)
    assert short["scored_tokens"] == doc["scored_tokens"] and short["perplexity"] != pytest.approx(doc["perplexity"], rel=1e-3)
    ref = cli("eval", art, "--metric", "perplexity", "--data", SST2_DEV, "--limit", "40", "--reference", art, "--json", check=0)
    assert json.loads(ref.stdout)["reference"]["greedy_next_token_agreement"] == 1.0  # against itself


@pytest.mark.parametrize(
    "content, args, expect",
    [
        ("", [], "no text to measure perplexity on"),
        ("   \n\n", [], "no text to measure perplexity on"),
        ("a fine film", ["--window", "100"], "exceeds the model's 64 positions"),
        ("a fine film", ["--window", "8", "--stride", "9"], "longer than the window"),
    ],
)
def test_bad_perplexity_input_exits_2(decoders, tmp_path, content, args, expect):
    f = tmp_path / "text.txt"
    f.write_text(content)
    proc = cli("eval", decoders["llama"][1], "--metric", "perplexity", "--data", f, *args, check=2)
    assert expect in one_line_error(proc)
