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
def decoders(decoder_models):
    """{family: (source dir, artifact exported with past)} (once per session, conftest)."""
    return decoder_models


@pytest.mark.parametrize("arch", DECODERS)
def test_decoders_export_with_past_and_generate_what_pytorch_generates(decoders, arch):
    art = Artifact.load(decoders[arch][1])
    m = art.manifest
    assert art.verify() == [] and m.source.task == "text-generation-with-past"
    v = m.validation
    assert v.passed and len(v.cases) == 2 and v.max_abs_diff < 1e-3  # logits at two prompt lengths
    gen = v.generation
    assert gen["passed"] and [c["prompt_tokens"] for c in gen["cases"]] == [8, 3]
    assert all(c["onnx"] == c["torch"] and len(c["torch"]) == 8 for c in gen["cases"])  # EOS suppressed: all 8 compared
    assert any(len(set(c["torch"])) > 1 for c in gen["cases"])  # the tokens depend on the context, so the cache is exercised
    names = {i.name for i in onnx.load(str(art.model_path), load_external_data=False).graph.input}
    assert {"input_ids", "past_key_values.0.key", "past_key_values.1.value"} <= names
    assert m.generation.kv_cache and m.generation.layers == 2 and m.generation.max_positions == 64


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


def test_a_with_past_task_not_validated_by_generation_exits_2(decoders, tmp_path):
    proc = cli("export", decoders["gpt2"][0], "-o", tmp_path / "x", "--task", "feature-extraction-with-past", check=2)
    line = one_line_error(proc)  # optimum: "... is not supported"; transformers 5: "cannot export 'gpt2' as ..."
    assert "feature-extraction-with-past is not supported" in line or "cannot export 'gpt2' as feature-extraction-with-past" in line
    assert not (tmp_path / "x").exists()


def test_with_past_on_an_encoder_exits_2_naming_the_model_type(tmp_path):
    src = build("bert", tmp_path / "bert-src")
    proc = cli("export", src, "-o", tmp_path / "x", "--task", "text-generation-with-past", check=2)
    assert "cannot export 'bert' as text-generation-with-past" in one_line_error(proc)
    assert not (tmp_path / "x").exists()


def test_a_vision_language_decoder_exports_its_language_model_with_past(tmp_path):
    """Gemma 3 (vision-language; the language settings nested in text_config): optimum cannot
    tell its ONNX task, so neither can edgedeploy (exit 2 naming the tasks, as optimum does);
    with --task, the text path exports with past, generates what PyTorch generates and bench
    --generate runs it."""
    src = build("gemma3", tmp_path / "gemma3-src")
    proc = cli("export", src, "-o", tmp_path / "x", check=2)
    line = one_line_error(proc)
    assert "cannot export 'gemma3' as image-text-to-text" in line and "text-generation-with-past" in line and "--task" in line
    assert not (tmp_path / "x").exists()
    cli("export", src, "-o", tmp_path / "g", "--task", "text-generation-with-past", check=0)
    m = Artifact.load(tmp_path / "g").manifest
    gen = m.validation.generation
    assert gen["passed"] and all(c["onnx"] == c["torch"] and len(c["torch"]) == 8 for c in gen["cases"])
    assert m.vocab_size == 128 and m.generation.max_positions == 64 and m.generation.layers == 2
    out = json.loads(
        cli(
            "bench",
            tmp_path / "g",
            "--generate",
            "--prompt-tokens",
            "8",
            "--new-tokens",
            "4",
            "--iterations",
            "5",
            "--warmup",
            "1",
            "--json",
            check=0,
        ).stdout
    )
    assert out["results"][0]["generation"]["decode_tokens_per_s"] > 0


def test_perplexity_on_real_text_with_a_sliding_window(decoders, tmp_path):
    from edgedeploy.core.adopt import open_model
    from edgedeploy.quality.perplexity import perplexity

    art = decoders["llama"][1]
    proc = cli("eval", art, "--metric", "perplexity", "--data", SST2_DEV, "--max-rows", "40", "--json", check=0)
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
    ref = cli("eval", art, "--metric", "perplexity", "--data", SST2_DEV, "--max-rows", "40", "--reference", art, "--json", check=0)
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


@pytest.fixture(scope="module")
def presets(decoders, tmp_path_factory):
    """The tiny Llama in float and with both int4 presets (calibrated on SST-2 text)."""
    from edgedeploy.quantize.api import quantize

    root = tmp_path_factory.mktemp("presets")
    art = decoders["llama"][1]
    train = SST2_DEV.parent / "train.tsv"
    return {
        "float": Artifact.load(art),
        **{
            p: quantize(art, root / p, "int4", int4_preset=p, calib_data=train, calib_samples=16, eval_samples=16)
            for p in ("accuracy", "compression")
        },
    }


def test_int4_presets_set_what_edgeformer_describes(presets):
    acc = presets["accuracy"].manifest.quantization
    comp = presets["compression"].manifest.quantization
    assert acc.settings["block_size"] == 64 and acc.settings["symmetric"] is False
    (head,) = acc.settings["lm_head_8bit"]  # optimum names it /lm_head/MatMul, transformers 5 node_linear_N
    parent = onnx.load(str(presets["float"].model_path)).graph
    assert "logits" in next(n.output for n in parent.node if n.name == head) and acc.settings["embedding_tables_8bit"] == 1
    assert acc.chosen_by["block_size"] == "preset accuracy"
    assert comp.settings["block_size"] == 128 and comp.settings["symmetric"] is True and comp.settings["kept_8bit"] == []
    g = onnx.load(str(presets["compression"].model_path)).graph
    weights = {i.name for i in g.initializer if len(i.dims) == 2}
    assert {"MatMulNBits", "GatherBlockQuantized"} <= {n.op_type for n in g.node}
    assert not [n.name for n in g.node if n.op_type in ("MatMul", "Gather") and set(n.input) & weights]  # every weight at 4 bits, lm_head too
    sizes = {k: a.manifest.size_bytes for k, a in presets.items()}
    assert max(sizes["compression"], sizes["accuracy"]) < sizes["float"]  # (which is smaller needs dims >= 128: the reference LM)


def test_quantized_decoders_generate_and_score_perplexity(presets, tmp_path):
    from edgedeploy.quality.perplexity import perplexity

    ppl = {k: perplexity(a, SST2_DEV, limit=20)["perplexity"] for k, a in presets.items()}
    assert all(np.isfinite(v) and v > 1 for v in ppl.values())
    dec = generate.Decoder(session.cpu_session(presets["compression"].model_path))
    assert len(dec.greedy(np.arange(3, 11, dtype=np.int64)[None, :], 5)["tokens"]) == 5


def test_a_flag_wins_over_the_preset_and_presets_need_int4(decoders, tmp_path):
    from edgedeploy.quantize.api import quantize

    art = quantize(decoders["llama"][1], tmp_path / "q", "int4", int4_preset="compression", block_size=32, int4_sensitive_8bit=0)
    q = art.manifest.quantization
    assert q.settings["block_size"] == 32 and q.chosen_by["block_size"] == "flag" and q.chosen_by["symmetric"] == "preset compression"
    proc = cli("quantize", decoders["llama"][1], "-o", tmp_path / "d", "--method", "dynamic", "--int4-preset", "accuracy", check=2)
    assert "--int4-preset: applies to --method int4, not" in one_line_error(proc)


def test_an_int4_preset_on_an_encoder_only_model(tiny_classifier_dir, tmp_path):
    from edgedeploy.export import export
    from edgedeploy.quantize.api import quantize

    parent = export(str(tiny_classifier_dir), tmp_path / "enc")
    art = quantize(parent.path, tmp_path / "acc", "int4", int4_preset="accuracy", int4_sensitive_8bit=0)
    s = art.manifest.quantization.settings
    assert s["lm_head_8bit"] == [] and s["embedding_tables_8bit"] == 3  # word, position and token-type tables, no lm_head
    assert art.manifest.fidelity.mean_cosine > 0.9


@pytest.fixture(scope="module")
def llama256(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama256")
    src = build("llama256", root / "src")
    cli("export", src, "-o", root / "art", "--task", "text-generation-with-past", check=0)
    return root / "art"


@pytest.mark.parametrize("algorithm", ["hqq", "k_quant", "gptq"])
def test_int4_algorithms_beyond_round_to_nearest(llama256, tmp_path, algorithm):
    from edgedeploy.quality.perplexity import perplexity
    from edgedeploy.quantize.api import quantize

    train = SST2_DEV.parent / "train.tsv"
    art = quantize(
        llama256, tmp_path / algorithm, "int4", int4_algorithm=algorithm, calib_data=train, calib_samples=8, eval_samples=8, int4_sensitive_8bit=0
    )
    q = art.manifest.quantization
    assert q.settings["int4_algorithm"] == algorithm and q.chosen_by["int4_algorithm"] == "flag"
    assert "MatMulNBits" in {n.op_type for n in onnx.load(str(art.model_path)).graph.node}
    assert art.manifest.size_bytes < Artifact.load(llama256).manifest.size_bytes / 2
    assert np.isfinite(perplexity(art, SST2_DEV, limit=10)["perplexity"])


def test_int4_algorithm_bad_input(decoders, tmp_path):
    proc = cli("quantize", decoders["llama"][1], "-o", tmp_path / "g", "--method", "int4", "--int4-algorithm", "gptq", check=2)
    assert "gptq calibrates on text: give --calib-data" in one_line_error(proc)
    # k-quant needs whole 256-wide blocks: the 32-wide tiny model is refused with ORT's reason, nothing published
    proc = cli(
        "quantize",
        decoders["llama"][1],
        "-o",
        tmp_path / "k",
        "--method",
        "int4",
        "--int4-algorithm",
        "k_quant",
        "--int4-sensitive-8bit",
        "0",
        check=1,
    )
    assert "--int4-algorithm k_quant: ONNX Runtime's quantizer failed" in one_line_error(proc) and not (tmp_path / "k").exists()


def _lm_recipe(path, source, *, extra_budget=""):
    path.write_text(
        f"name: lm\nsource: {source}\nexport: {{task: text-generation-with-past}}\n"
        f"data:\n  eval: {SST2_DEV}\n  calib: {SST2_DEV.parent / 'train.tsv'}\n  label_column: null\n  max_rows: 30\n"
        "variants:\n"
        "  float: {method: float, gate: false}\n"
        "  accuracy: {method: int4, int4_preset: accuracy, calib_samples: 8, eval_samples: 8, budgets: {min_compression: 1.2}}\n"
        "  compression: {method: int4, int4_preset: compression, calib_samples: 8, eval_samples: 8}\n"
        "targets:\n  - name: local\n    generate: true\n    prompt_tokens: 8\n    new_tokens: 8\n    iterations: 5\n    warmup: 1\n    max_cv: 10.0\n"
        f"budgets:\n  max_perplexity_increase: 5.0\n  min_decode_tokens_per_s: 1\n  max_ttft_ms: 10000\n{extra_budget}"
    )
    return path


def test_a_recipe_gates_decoders_on_perplexity_ttft_and_tokens_per_second(decoders, tmp_path):
    recipe = _lm_recipe(tmp_path / "lm.yaml", decoders["llama"][0])
    cli("run", recipe, "--gate", "--run-dir", tmp_path / "run", check=0)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = {v["name"]: v for v in report["variants"]}
    assert rows["float"]["perplexity"] > 1 and rows["float"].get("perplexity_increase") == pytest.approx(0.0)
    assert rows["compression"]["perplexity_increase"] is not None and rows["compression"]["next_token_agreement"] is not None
    measured = report["targets"][0]["results"]
    assert all(measured[n]["ttft_ms"] > 0 and measured[n]["decode_tokens_per_s"] > 0 for n in rows)
    checks = {(c["variant"], c["budget"]) for c in report["gate"]["checks"]}
    assert {("accuracy", "min_compression"), ("compression", "max_perplexity_increase"), ("accuracy", "min_decode_tokens_per_s")} <= checks
    assert ("compression", "min_compression") not in checks  # a variant's own budget applies to that variant only
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## Decoders" in md and "decode tokens/s" in md and "decode tokens/s vs perplexity" in (tmp_path / "run" / "report.html").read_text()
    # a perplexity budget nobody meets fails the gate with exit 1
    _lm_recipe(recipe, decoders["llama"][0]).write_text(recipe.read_text().replace("max_perplexity_increase: 5.0", "max_perplexity_increase: 0.0"))
    proc = cli("run", recipe, "--gate", "--run-dir", tmp_path / "run", check=1)
    assert "max_perplexity_increase" in proc.stdout + proc.stderr


def test_the_lm_tokenizer_trains_the_same_every_time(tmp_path):
    """The reference LM's cache key assumes its tokenizer is a function of the text (it is not with
    an end-of-word suffix: huggingface/tokenizers#1794)."""
    from edgedeploy.compress.lm_tokenizer import train_tokenizer
    from edgedeploy.data.datasets import read_texts

    texts = read_texts(SST2_DEV.parent / "train.tsv", "text", 3000)
    files = [train_tokenizer(texts, 512, tmp_path / str(i)) and (tmp_path / str(i) / "tokenizer.json").read_bytes() for i in range(3)]
    assert files[0] == files[1] == files[2]
    tok = train_tokenizer(texts, 512, tmp_path / "x")
    assert tok.decode(tok(texts[0])["input_ids"]).strip() == texts[0].strip().lower()


def test_tune_a_decoder_on_its_decode_rate(decoders, tmp_path):
    out = tmp_path / "tuned"
    args = ("--generate", "--prompt-tokens", "12", "--new-tokens", "8", "--iterations", "8", "--warmup", "1", "--eval-samples", "6")
    cli("tune", decoders["llama"][1], "-o", out, "--objective", "decode", "--methods", "dynamic,int4", "--data", SST2_DEV, *args, check=0)
    doc = json.loads((out / "tune.json").read_text())
    rates = {c["id"]: c["measured"]["generation"]["decode_tokens_per_s"] for c in doc["candidates"] if c.get("measured")}
    assert doc["objective"] == "decode" and len(rates) >= 2 and doc["winner"]["id"] == max(rates, key=rates.get)
    assert "fused" not in {c["parent"] for c in doc["candidates"]}  # a decoder's fusions are not validated with past
    assert Artifact.load(out).manifest.generation.kv_cache
