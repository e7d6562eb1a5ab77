"""Encoder-decoders (T5, Whisper): artifacts of three graphs, each validated against PyTorch,
quantized graph by graph, and timed as generation in the torch-free runtime. Tiny random
models, real ONNX Runtime sessions."""

import json
import shutil

import onnx
import pytest
from conftest import SST2_DEV, cli, one_line_error, optimum_main_export
from hf_configs import SEQ2SEQ, build

from edgedeploy.core.artifact import Artifact
from edgedeploy.runtimes import seq2seq, session

ROLES = ["encoder", "decoder", "decoder-with-past"]


@pytest.fixture
def models(seq2seq_models):
    """{family: (source dir, artifact)}, exported with the detected task (once per session, conftest)."""
    return seq2seq_models


def _ops(path):
    return {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}


@pytest.mark.parametrize("arch", SEQ2SEQ)
def test_seq2seq_exports_three_validated_graphs_that_generate_what_pytorch_does(models, arch):
    art = Artifact.load(models[arch][1])
    m = art.manifest
    assert art.verify() == [] and m.source.task.endswith("-with-past")  # detected through optimum's TasksManager
    assert [g.role for g in m.graphs] == ROLES and m.model_file == "encoder_model.onnx"
    assert sorted(art.model_files()) == sorted(g.file for g in m.graphs)
    v = m.validation
    assert v.passed and v.max_abs_diff < 1e-3
    assert sorted({c["inputs"]["graph"] for c in v.cases}) == sorted(ROLES) and len(v.cases) == 6  # each graph, two encoder inputs
    gen = v.generation
    assert gen["passed"] and all(c["onnx"] == c["torch"] and len(c["onnx"]) == 8 for c in gen["cases"])
    assert any(len(set(c["torch"])) > 1 for c in gen["cases"])  # the tokens depend on the context: the cache is exercised
    assert m.generation.architecture == "encoder-decoder" and m.generation.layers == 2
    assert isinstance(m.generation.decoder_start_token_id, int)
    with_past = m.graph("decoder-with-past")
    assert any(i.name == "past_key_values.0.encoder.key" for i in with_past.inputs)
    assert "graph decoder-with-past" in cli("inspect", models[arch][1], check=0).stdout


def test_bound_and_plain_seq2seq_runs_generate_the_same_tokens(models):
    art = Artifact.load(models["t5"][1])
    sessions = [session.cpu_session(art.path / art.graph_files[r]) for r in ROLES]
    s2s = seq2seq.Seq2Seq(*sessions)
    feeds = seq2seq.encoder_feeds(sessions[0], 10, 128, seed=3)
    bound = s2s.greedy(feeds, 0, 12)
    s2s.binding = False
    plain = s2s.greedy(feeds, 0, 12)
    assert bound["tokens"] == plain["tokens"] and len(bound["tokens"]) == 12 and len(bound["step_s"]) == 11


@pytest.mark.parametrize("arch", SEQ2SEQ)
@pytest.mark.parametrize("method,op", [("dynamic", "MatMulInteger"), ("int4", "MatMulNBits")])
def test_quantize_runs_on_every_graph_with_fidelity_by_generation(models, arch, method, op, tmp_path):
    cli("quantize", models[arch][1], "-o", tmp_path / "q", "--method", method, check=0)
    q = Artifact.load(tmp_path / "q")
    m = q.manifest
    assert [g.role for g in m.graphs] == ROLES and m.quantization.method == method
    for role, name in q.graph_files.items():
        assert op in _ops(q.path / name), role  # every graph quantized, not just the encoder
    assert m.quantization.compression_ratio > 1.2
    f = m.fidelity
    assert f.samples >= 2 and 0 < f.mean_cosine <= 1 and 0 <= f.token_agreement <= 1 and f.finite
    assert m.generation == Artifact.load(models[arch][1]).manifest.generation


@pytest.mark.parametrize(
    "flags,says",
    [
        (["--method", "static", "--random-calibration"], "--method static works on one graph"),
        (["--method", "dynamic", "--exclude", "MatMul"], "--exclude works on one graph"),
        (["--method", "int4", "--int4-sensitive-8bit", "2"], "--int4-sensitive-8bit works on one graph"),
    ],
)
def test_one_graph_quantize_steps_exit_2_on_an_encoder_decoder(models, tmp_path, flags, says):
    proc = cli("quantize", models["t5"][1], "-o", tmp_path / "q", *flags, check=2)
    assert says in one_line_error(proc) and not (tmp_path / "q").exists()


@pytest.mark.parametrize("arch", SEQ2SEQ)
def test_bench_generate_times_encoder_and_decode(models, arch):
    proc = cli(
        "bench", models[arch][1], "--generate", "--prompt-tokens", "12", "--new-tokens", "6", "--iterations", "4", "--warmup", "1", "--json", check=0
    )
    res = json.loads(proc.stdout)["results"][0]
    g = res["generation"]
    assert g["new_tokens"] == 6 and g["runs"] == 4 and g["ttft_ms"]["p50"] > 0 and g["decode_tokens_per_s"] > 0 and g["io_binding"]
    art = Artifact.load(models[arch][1])
    assert res["model_size_bytes"] == sum((art.path / n).stat().st_size for n in art.graph_files.values())
    if arch == "whisper":  # speech: the encoder takes the model's fixed features, not a prompt
        assert g["prompt_tokens"] is None and g["prefill_tokens_per_s"] is None and res["inputs"]["input_features"] == [1, 16, 3000]
    else:
        assert g["prompt_tokens"] == 12 and g["prefill_tokens_per_s"] > 0 and res["inputs"]["input_ids"] == [1, 12]


@pytest.mark.parametrize(
    "args,says",
    [
        (["bench", "{art}", "--iterations", "2"], "timed as generation: add --generate"),
        (["bench", "{art}", "--generate", "--new-tokens", "65"], "exceed the model's 64 positions"),
        (["tune", "{art}", "-o", "{tmp}/t"], "tuned on generation: add --generate"),
        (["tune", "{art}", "-o", "{tmp}/t", "--generate", "--data", "x.tsv"], "not text; leave --data out"),
        (["tune", "{art}", "-o", "{tmp}/t", "--objective", "decode"], "--objective decode is a generation rate: give --generate"),
        (["estimate", "{art}", "--profile", "rpi4"], "estimate handles single-graph artifacts"),
        (["eval", "{art}", "--data", "x.tsv", "--reference", "{art}"], "its encoder takes input_features, not text"),
    ],
)
def test_one_graph_steps_exit_2_on_an_encoder_decoder(models, tmp_path, args, says):
    art = models["whisper"][1]
    proc = cli(*[a.format(art=art, tmp=tmp_path) for a in args], check=2)
    assert says in one_line_error(proc)


def test_eval_compares_an_encoder_decoder_with_its_parent_by_generation_on_real_text(models, tmp_path):
    cli("quantize", models["t5"][1], "-o", tmp_path / "q", "--method", "fp16", check=0)
    proc = cli("eval", tmp_path / "q", "--data", SST2_DEV, "--reference", models["t5"][1], "--max-rows", "6", "--json", check=0)
    res = json.loads(proc.stdout)
    f = res["fidelity"]
    assert res["samples"] == f["samples"] == 6 and f["reference"] == str(models["t5"][1])
    assert 0.9 < f["mean_cosine"] <= 1 and 0 <= f["token_agreement"] <= 1 and "top1_agreement" in f
    same = cli("eval", models["t5"][1], "--data", SST2_DEV, "--reference", models["t5"][1], "--max-rows", "3", "--json", check=0)
    assert json.loads(same.stdout)["fidelity"]["token_agreement"] == 1.0  # against itself: the comparison can tell
    no_ref = cli("eval", tmp_path / "q", "--data", SST2_DEV, check=2)
    assert "evaluated against --reference PARENT" in one_line_error(no_ref)


GEN = ("--generate", "--prompt-tokens", "12", "--new-tokens", "8", "--iterations", "8", "--warmup", "1", "--eval-samples", "6")


def test_tune_picks_the_fastest_decoding_encoder_decoder_within_budget(models, tmp_path):
    out = tmp_path / "tuned"
    args = ("--objective", "decode", "--methods", "dynamic,int4,static", "--min-mean-cosine", "0.3", "--data", SST2_DEV, *GEN)
    cli("tune", models["t5"][1], "-o", out, *args, check=0)
    doc = json.loads((out / "tune.json").read_text())
    assert doc["objective"] == "decode" and any("static" in s for s in doc["skipped"])
    measured = [c for c in doc["candidates"] if c.get("measured")]
    rates = {c["id"]: c["measured"]["generation"]["decode_tokens_per_s"] for c in measured}
    assert len(rates) >= 2 and doc["winner"]["id"] == max(rates, key=rates.get)  # the best decode rate of the final round
    art = Artifact.load(out)
    assert [g.role for g in art.manifest.graphs] == ROLES and art.manifest.lineage.step.startswith("tune:")
    assert art.manifest.fidelity.inputs["source"] == str(SST2_DEV)  # fidelity by generation on the real text


def test_tune_a_speech_model_without_text_measures_fidelity_on_its_features(models, tmp_path):
    out = tmp_path / "tuned"
    cli("tune", models["whisper"][1], "-o", out, "--objective", "ttft", "--methods", "dynamic", "--no-session-search", *GEN, check=0)
    art = Artifact.load(out)
    assert art.manifest.fidelity.inputs["kind"] == "random" and "random" in art.manifest.quantization.warning
    assert json.loads((out / "tune.json").read_text())["objective"] == "ttft"


def test_a_seq2seq_export_that_does_not_match_pytorch_publishes_nothing(models, tmp_path):
    proc = cli("export", models["t5"][0], "-o", tmp_path / "x", "--atol", "0", "--rtol", "0", check=1)
    assert "validation failed" in one_line_error(proc) and not (tmp_path / "x").exists()


def test_seq2seq_without_past_says_how_to_export(models, tmp_path):
    proc = cli("export", models["t5"][0], "-o", tmp_path / "x", "--task", "text2text-generation", check=2)
    assert "--task text2text-generation-with-past" in one_line_error(proc) and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "tamper,says",
    [
        (lambda m: m["graphs"].append(dict(m["graphs"][1])), "each role at most once"),
        (lambda m: m["graphs"][2].update(file="../decoder_with_past_model.onnx"), "climbs out of the artifact"),
        (lambda m: m["graphs"][1].update(role="lm_head"), "graphs.1.role"),
        (lambda m: m["graphs"][2].update(file="missing.onnx"), "does not list its model file missing.onnx"),
        (lambda m: m["graphs"][0].update(file="decoder_model.onnx"), "is not model_file 'encoder_model.onnx'"),
    ],
)
def test_a_tampered_graph_list_is_refused(models, tmp_path, tamper, says):
    dst = tmp_path / "art"
    shutil.copytree(models["t5"][1], dst)
    manifest = json.loads((dst / "edgedeploy.json").read_text())
    tamper(manifest)
    (dst / "edgedeploy.json").write_text(json.dumps(manifest))
    proc = cli("verify", dst, check=2)
    assert says in one_line_error(proc)


def test_an_optimum_seq2seq_export_is_adopted_with_its_three_graphs(models, tmp_path):
    """optimum's own output directory (encoder, decoder, decoder-with-past and a merged decoder)
    is taken as it is: bench generates with it and quantize writes its lineage."""
    main_export = optimum_main_export()
    main_export(str(models["t5"][0]), output=str(tmp_path / "optimum"), task="text2text-generation-with-past", do_validation=False)
    proc = cli("bench", tmp_path / "optimum", "--generate", "--new-tokens", "4", "--iterations", "3", "--warmup", "1", "--json", check=0)
    res = json.loads(proc.stdout)["results"][0]
    assert res["name"] == "optimum" and res["generation"]["decode_tokens_per_s"] > 0
    cli("quantize", tmp_path / "optimum", "-o", tmp_path / "q", "--method", "dynamic", check=0)
    q = Artifact.load(tmp_path / "q")
    assert q.manifest.lineage.step == "quantize:dynamic" and [g.role for g in q.manifest.graphs] == ROLES
    assert "decoder_model_merged.onnx" not in q.manifest.files and q.manifest.generation.decoder_start_token_id == 0
    from edgedeploy.core.adopt import open_model

    assert q.manifest.lineage.parent == q.manifest.fidelity.reference == open_model(tmp_path / "optimum").digest


def test_a_recipe_runs_an_encoder_decoder_through_quantize_eval_bench_and_the_gate(models, tmp_path):
    recipe = tmp_path / "t5.yaml"
    recipe.write_text(
        f"name: t5\nsource: {models['t5'][0]}\n"
        f"data:\n  eval: {SST2_DEV}\n  label_column: null\n  max_rows: 6\n"
        "variants:\n  float: {method: float, gate: false}\n  int8: {method: dynamic, eval_samples: 6}\n  fp16: {method: fp16, eval_samples: 6}\n"
        "targets:\n  - name: local\n    generate: true\n    prompt_tokens: 8\n    new_tokens: 8\n    iterations: 5\n    warmup: 1\n    max_cv: 10.0\n"
        "budgets:\n  min_mean_cosine: 0.5\n  min_decode_tokens_per_s: 1\n"
    )
    cli("run", recipe, "--gate", "--run-dir", tmp_path / "run", check=0)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    measured = report["targets"][0]["results"]
    assert all(measured[n]["decode_tokens_per_s"] > 0 for n in ("float", "int8", "fp16"))
    checks = {(c["variant"], c["budget"]) for c in report["gate"]["checks"]}
    assert {("int8", "min_mean_cosine"), ("fp16", "min_decode_tokens_per_s")} <= checks
    recipe.write_text(recipe.read_text().replace("min_mean_cosine: 0.5", "min_mean_cosine: 1.0"))
    assert "min_mean_cosine" in one_line_error(cli("run", recipe, "--gate", "--run-dir", tmp_path / "run", check=1))


@pytest.mark.parametrize("arch", ["bart", "speech_to_text"])
def test_more_seq2seq_families_export_with_the_detected_task_and_generate(arch, tmp_path):
    src = build(arch, tmp_path / "src")
    cli("export", src, "-o", tmp_path / "a", check=0)
    m = Artifact.load(tmp_path / "a").manifest
    want = "text2text-generation-with-past" if arch == "bart" else "automatic-speech-recognition-with-past"
    assert m.source.task == want and m.validation.generation["passed"] and [g.role for g in m.graphs] == ROLES
    proc = cli("bench", tmp_path / "a", "--generate", "--new-tokens", "4", "--iterations", "3", "--warmup", "1", "--json", check=0)
    assert json.loads(proc.stdout)["results"][0]["generation"]["decode_tokens_per_s"] > 0


@pytest.mark.parametrize(
    "graphs,says",
    [
        ({"encoder": "e.onnx", "decoder": "d.onnx"}, "graphs must map exactly"),
        ({"encoder": "e.onnx", "decoder": "d.onnx", "decoder-with-past": 7}, "model path must be a file name"),
        ({"encoder": "e.onnx", "decoder": "d.onnx", "decoder-with-past": "../../etc/nothing.onnx"}, "no such file"),
    ],
)
def test_the_device_refuses_a_job_with_bad_graphs(models, tmp_path, graphs, says):
    from edgedeploy.runtimes import job
    from edgedeploy.runtimes.errors import JobError

    art = models["t5"][1]
    for role, name in Artifact.load(art).graph_files.items():
        shutil.copyfile(art / name, tmp_path / {"encoder": "e.onnx", "decoder": "d.onnx"}.get(role, "p.onnx"))
    spec = {"models": [{"name": "t5", "path": "e.onnx", "graphs": graphs}], "generate": {"prompt_tokens": 4, "new_tokens": 4}}
    with pytest.raises(JobError, match=says):
        job.normalize(spec, tmp_path)
