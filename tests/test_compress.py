"""`edgedeploy prune` / `edgedeploy distill` and compression steps in recipes: on tiny random
models (fewer parameters, reload, export and validate; distillation lowers its loss, is
deterministic and resumes), the bad inputs the issue lists, and one slow test on the real
MiniLM SST-2 reference classifier (20 % of heads pruned, accuracy after recovery on SST-2 dev)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import DATASETS, SST2_DEV, SST2_FIXTURE_BUDGET_S, SST2_TEST_MIN_ACCURACY, TESTS, cli, have_minilm, needs_minilm, one_line_error

SST2_TRAIN = DATASETS / "sst2" / "train.tsv"


def _tiny_classifier(dest, layers=3, heads=4, hidden=64, ffn=128, seed=0, tokenizer_from=None):
    """A random BERT sentiment classifier with the MiniLM tokenizer (or the tokenizer in ``tokenizer_from``)."""
    import torch
    import transformers as tf

    from edgedeploy.core.sources import embedded_path

    torch.manual_seed(seed)
    cfg = tf.BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=128,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    tf.BertForSequenceClassification(cfg).eval().save_pretrained(dest)
    src = tokenizer_from or embedded_path("minilm-l6")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / f).exists():
            shutil.copy2(src / f, dest / f)
    return dest


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    if not have_minilm():
        pytest.skip("demo extra not installed")
    return _tiny_classifier(tmp_path_factory.mktemp("teacher") / "model")


def _params(path):
    """The checkpoint as edgedeploy loads it (transformers 5 has no head pruning of its own)."""
    from transformers import AutoModelForSequenceClassification

    from edgedeploy.exporters.encoder_parts import from_pretrained

    m = from_pretrained(AutoModelForSequenceClassification, path, local_files_only=True)
    return m, sum(p.numel() for p in m.parameters())


def _logits(model, texts=("a gripping, funny film", "dull and far too long")):
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model.name_or_path), local_files_only=True)
    with torch.no_grad():
        return model.eval()(**tok(list(texts), padding=True, return_tensors="pt")).logits


# ---- pruning ------------------------------------------------------------------------------


@needs_minilm
def test_pruned_model_is_smaller_reloads_and_exports(teacher, tmp_path):
    out = tmp_path / "pruned"
    proc = cli("prune", teacher, "-o", out, "--keep-layers", "0,2", "--heads", "0:1;1:0,3", "--ffn", "0.25", "--json", check=0)
    rec = json.loads(proc.stdout)
    assert rec["removed"]["heads"] == {"0": [1], "1": [0, 3]} and rec["removed"]["heads_total"] == 3
    assert rec["importance"] == "magnitude"  # no --data: the cheap fallback

    before_model, before = _params(teacher)
    model, after = _params(out)
    assert after < before and rec["parameters"] == {"before": before, "after": after, "reduction": pytest.approx(1 - after / before)}
    # what was removed is in the config, so loading rebuilds exactly this structure
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 2 and cfg["intermediate_size"] == 96 and cfg["pruned_heads"] == {"0": [1], "1": [0, 3]}
    assert model.bert.encoder.layer[1].attention.self.num_attention_heads == 2
    assert model.bert.encoder.layer[0].intermediate.dense.out_features == 96
    assert (out / "compression.json").is_file()

    import torch

    assert torch.isfinite(_logits(model)).all() and _logits(model).shape == _logits(before_model).shape

    # export needs no special flag, validates against PyTorch and the ONNX file shrinks
    cli("export", out, "-o", tmp_path / "pruned-onnx", check=0)
    cli("export", teacher, "-o", tmp_path / "full-onnx", check=0)
    pruned_art = json.loads((tmp_path / "pruned-onnx" / "edgedeploy.json").read_text())
    full_art = json.loads((tmp_path / "full-onnx" / "edgedeploy.json").read_text())
    assert pruned_art["validation"]["passed"]
    assert pruned_art["files"]["model.onnx"]["size"] < full_art["files"]["model.onnx"]["size"]
    assert pruned_art["parameters"] < full_art["parameters"]


@needs_minilm
def test_pruning_without_recovery_only_removes_what_is_named(teacher):
    """Removing heads physically gives exactly the model with those heads' outputs zeroed."""
    import torch

    from edgedeploy.exporters.encoder_parts import Encoder

    model, _ = _params(teacher)
    masked, _ = _params(teacher)
    enc = Encoder(masked)
    d = enc.head_size()
    with torch.no_grad():  # zero head 2 of layer 1 in the output projection: what pruning it must equal
        enc.part(1, "attn_out").weight[:, 2 * d : 3 * d] = 0
    Encoder(model).remove_heads({1: [2]})
    assert torch.allclose(_logits(model), _logits(masked), atol=1e-5)


def test_distilbert_family_prunes_heads_and_exports(tmp_path):
    from hf_configs import build

    from edgedeploy.compress import PruneOptions, prune

    src = build("distilbert", tmp_path / "distilbert")
    rec = prune(str(src), tmp_path / "pruned", PruneOptions(heads="0.5", ffn=0.5))
    # 4 heads in 2 layers; half of them, and never a whole layer: one from each
    assert rec["removed"]["heads_total"] == 2 and set(rec["removed"]["heads"]) == {"0", "1"}
    assert rec["parameters"]["after"] < rec["parameters"]["before"]
    cfg = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert cfg["hidden_dim"] == 32 and len(cfg["pruned_heads"]) == 2
    proc = cli("export", tmp_path / "pruned", "-o", tmp_path / "onnx", "--json", check=0)
    assert json.loads(proc.stdout)["validation"]["passed"]


@needs_minilm
def test_gradient_importance_equals_the_gradient_of_per_head_output_weights(teacher):
    """The hook-based gates give the same head importance as scaling each head's columns of the
    attention output projection by a gate m_h and differentiating the loss by m_h (what
    transformers 4's head_mask gave; transformers 5 has no head_mask)."""
    import numpy as np
    import torch
    from torch.func import functional_call
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgedeploy.compress import data as textdata
    from edgedeploy.compress.importance import gradient
    from edgedeploy.exporters.encoder_parts import Encoder

    model = AutoModelForSequenceClassification.from_pretrained(str(teacher), attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(str(teacher))
    rows = textdata.load(SST2_DEV, model.config, limit=64)
    enc = Encoder(model)
    ours, _ = gradient(enc, textdata.batches(tok, rows, np.arange(64), 32, 64))
    names = {id(p): n for n, p in model.named_parameters()}
    outs = [(names[id(enc.part(i, "attn_out").weight)], enc.part(i, "attn_out").weight) for i in range(3)]
    want = torch.zeros(3, 4)
    for x, y in textdata.batches(tok, rows, np.arange(64), 32, 64):
        mask = torch.ones(3, 4, requires_grad=True)
        scaled = {name: w * mask[i].repeat_interleave(enc.head_size())[None, :] for i, (name, w) in enumerate(outs)}
        (g,) = torch.autograd.grad(functional_call(model, scaled, kwargs={**x, "labels": y}).loss, mask)
        want += g.abs()
    np.testing.assert_allclose(np.stack(ours), (want / 2).numpy(), rtol=1e-4, atol=1e-7)


@needs_minilm
def test_gradual_pruning_with_recovery_reports_accuracy_each_round(teacher, tmp_path):
    out = tmp_path / "pruned"
    proc = cli(
        "prune",
        teacher,
        "-o",
        out,
        "--heads",
        "0.25",
        "--steps",
        "2",
        "--train-data",
        SST2_DEV,
        "--data",
        SST2_DEV,
        "--importance-samples",
        "64",
        "--recover-epochs",
        "1",
        "--train-subset",
        "96",
        "--lr",
        "1e-4",
        "--json",
        check=0,
    )
    rec = json.loads(proc.stdout)
    assert rec["importance"] == "gradient"
    assert rec["removed"]["heads_total"] == 3  # 25 % of 12 heads, over two rounds
    r1, r2 = rec["rounds"]
    assert sum(map(len, r1["heads_removed"].values())) == 2 and sum(map(len, r2["heads_removed"].values())) == 1
    assert r2["parameters"] < r1["parameters"] < rec["parameters"]["before"]
    for r in (r1, r2):
        assert 0 <= r["accuracy_after_prune"] <= 1 and 0 <= r["accuracy_after_recovery"] <= 1
        assert r["recovery"]["steps"] == 3 and r["recovery"]["rows"] == 96  # 96 rows, batch 32, one epoch
        assert r["recovery"]["last_loss"] > 0
    assert rec["accuracy"]["eval_rows"] == 872 and rec["accuracy"]["after"] == r2["accuracy_after_recovery"]
    assert rec["data"]["train"]["sha256"] and rec["settings"]["steps"] == 2


@needs_minilm
def test_allow_empty_layer_leaves_an_attention_that_adds_only_its_bias(teacher, tmp_path):
    import torch

    from edgedeploy.compress import PruneOptions, prune

    rec = prune(str(teacher), tmp_path / "p", PruneOptions(heads="1:0,1,2,3", allow_empty_layer=True))
    assert rec["removed"]["emptied_layers"] == [1] and rec["removed"]["heads_total"] == 4
    model, _ = _params(tmp_path / "p")
    attn = model.bert.encoder.layer[1].attention
    assert attn.self.num_attention_heads == 1 and not attn.output.dense.weight.any() and not attn.self.value.weight.any()
    hidden = torch.randn(2, 5, 64)
    ctx = attn.self(hidden)[0]
    # whatever the (zeroed) head computes, the projection adds nothing but its bias
    assert torch.allclose(attn.output.dense(ctx), attn.output.dense.bias.expand(2, 5, 64))
    cli("export", tmp_path / "p", "-o", tmp_path / "onnx", check=0)


PRUNE_BAD = [
    (["--heads", "100"], "asks to remove 100 heads but the model has only 12"),
    (["--heads", "12"], "would empty a layer"),
    (["--heads", "0:0,1,2,3"], "removes all 4 heads of layer 0; pass --allow-empty-layer"),
    (["--heads", "7:0"], "layer 7 does not exist"),
    (["--heads", "0:9"], "layer 0 has no head 9"),
    (["--heads", "1.5"], "a fraction must be between 0 and 1"),
    (["--heads", "lots"], "give a fraction"),
    (["--keep-layers", "0,5"], "give distinct layer indices from 0 to 2"),
    (["--ffn", "1.0"], "--ffn: must be < 1"),
    ([], "nothing to prune"),
    (["--heads", "0.2", "--importance", "gradient"], "gradient importance needs labeled training text"),
    (["--heads", "0.2", "--train-data", "EMPTY"], "has a header but no rows"),
    (["--heads", "0.2", "--train-data", "NOLABEL"], "no column 'label'"),
    (["--heads", "0.2", "--recover-alpha", "0.5"], "--recover-alpha 0.5 weighs the recovery loss: give --recover-epochs too"),
]


@needs_minilm
@pytest.mark.parametrize("args,expected", PRUNE_BAD, ids=[e[:28] for _, e in PRUNE_BAD])
def test_prune_rejects_bad_input_up_front(teacher, tmp_path, args, expected):
    (tmp_path / "empty.tsv").write_text("text\tlabel\n")
    (tmp_path / "nolabel.tsv").write_text("text\nfine film\n")
    args = [str(tmp_path / "empty.tsv") if a == "EMPTY" else str(tmp_path / "nolabel.tsv") if a == "NOLABEL" else a for a in args]
    out = tmp_path / "out"
    line = one_line_error(cli("prune", teacher, "-o", out, *args, check=2))
    assert expected in line
    assert not out.exists() and not list(tmp_path.glob(".edgedeploy-staging-*"))


@needs_minilm
def test_recovery_by_self_distillation_keeps_the_pruned_model_close_to_the_unpruned_one(teacher, tmp_path):
    """--recover-alpha 0: recovery learns the unpruned model's softened logits only, so the pruned
    model's outputs stay with the model before pruning; with hard labels (the default, alpha 1)
    the same recovery (same rows, order, steps) learns the labels and moves away from it."""
    import torch
    from transformers import AutoModelForSequenceClassification

    texts = [r.split("\t")[0] for r in SST2_DEV.read_text().splitlines()[1:41]]

    def kl_to_teacher(path):
        from edgedeploy.exporters.encoder_parts import from_pretrained

        m = from_pretrained(AutoModelForSequenceClassification, path, local_files_only=True).eval()
        want, got = _logits(teacher_model, texts), _logits(m, texts)
        p, q = torch.log_softmax(want / 2, -1), torch.log_softmax(got / 2, -1)
        return float((p.exp() * (p - q)).sum(-1).mean())

    teacher_model, _ = _params(teacher)
    common = ["--heads", "0:0,1;1:0,1;2:0,1", "--train-data", SST2_DEV, "--train-subset", "256", "--recover-epochs", "2", "--lr", "1e-3"]
    runs = {}
    for alpha in ("1", "0"):
        out = tmp_path / f"alpha{alpha}"
        rec = json.loads(cli("prune", teacher, "-o", out, *common, "--recover-alpha", alpha, "--json", check=0).stdout)
        assert rec["settings"]["recover_alpha"] == float(alpha)
        runs[alpha] = kl_to_teacher(out)
    cli("prune", teacher, "-o", tmp_path / "none", "--heads", "0:0,1;1:0,1;2:0,1", check=0)
    after_prune = kl_to_teacher(tmp_path / "none")
    assert runs["1"] > 100 * after_prune, (runs, after_prune)  # label recovery moved the model
    assert runs["0"] < runs["1"] / 3, (runs, after_prune)


@needs_minilm
def test_prune_refuses_to_overwrite_without_force(teacher, tmp_path):
    out = tmp_path / "out"
    cli("prune", teacher, "-o", out, "--heads", "1", check=0)
    stamp = (out / "compression.json").read_text()
    assert "already exists; pass --force" in one_line_error(cli("prune", teacher, "-o", out, "--heads", "2", check=2))
    assert (out / "compression.json").read_text() == stamp
    cli("prune", teacher, "-o", out, "--heads", "2", "--force", check=0)
    assert json.loads((out / "compression.json").read_text())["removed"]["heads_total"] == 2


# ---- distillation -------------------------------------------------------------------------


def _state(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@needs_minilm
def test_distillation_lowers_its_loss_and_is_deterministic(teacher, tmp_path):
    import torch

    from edgedeploy.compress import DistillOptions, distill

    # a separately initialised one-layer student: far from the teacher, so there is something to learn
    student = _tiny_classifier(tmp_path / "student", layers=1, seed=1)
    opts = DistillOptions(
        train_data=str(SST2_DEV),
        student=str(student),
        alpha=0.0,
        train_subset=256,
        epochs=2,
        lr=1e-3,
        attention_weight=1.0,
        hidden_weight=1.0,
        eval_data=str(SST2_DEV),
        checkpoint_every=0,
    )
    rec = distill(str(teacher), tmp_path / "a", opts)
    assert rec["layer_map"] == [2]  # one student layer learns from the teacher's last
    before, after = rec["loss_before"], rec["loss_after"]
    assert after["total"] < 0.8 * before["total"], (before, after)
    assert after["logits"] < 0.5 * before["logits"] and after["hidden"] < before["hidden"]
    assert set(rec["loss_after"]) == {"logits", "hidden", "relations", "total"}
    assert rec["parameters"]["after"] < rec["parameters"]["before"]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["num_hidden_layers"] == 1
    assert {"before", "initial", "after"} <= set(rec["accuracy"])
    distill(str(teacher), tmp_path / "b", opts)
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = distill(str(teacher), tmp_path / "c", DistillOptions(**{**opts.__dict__, "seed": 1}))
    assert not all(torch.equal(a[k], _state(tmp_path / "c")[k]) for k in a) and c["settings"]["seed"] == 1
    assert not (tmp_path / "a.partial").exists()  # the checkpoint folder goes once the model is published


@needs_minilm
def test_interrupted_distillation_resumes_to_the_same_weights(teacher, tmp_path):
    import torch

    rows = tmp_path / "rows.tsv"  # the first 320 SST-2 dev rows: 160 steps, time to interrupt, a third of the full file's cost
    rows.write_text("".join(SST2_DEV.read_text().splitlines(keepends=True)[:321]))
    args = [
        "distill",
        "--teacher",
        teacher,
        "--student-layers",
        "2",
        "--train-data",
        rows,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "5e-4",
        "--checkpoint-every",
        "5",
        "--attention-weight",
        "1",
    ]
    cli(*args, "-o", tmp_path / "straight", check=0)

    out = tmp_path / "resumed"
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedeploy", *map(str, args), "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    partial = tmp_path / "resumed.partial"
    deadline = time.monotonic() + 120
    while not (partial / "trainer.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert not out.exists()
    step = torch.load(partial / "trainer.pt", weights_only=True)["step"]
    assert 0 < step < 160  # 320 rows / 4 x 2 epochs

    done = json.loads(cli(*args, "-o", out, "--resume", "--json", check=0).stdout)
    assert done["training"]["resumed_from"] >= step
    a, b = _state(tmp_path / "straight"), _state(out)
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed run must end with the weights of an uninterrupted one"
    assert not partial.exists()


@needs_minilm
def test_diverging_distillation_stops_and_keeps_the_last_good_checkpoint(teacher, tmp_path):
    out = tmp_path / "s"
    proc = cli(
        "distill",
        "--teacher",
        teacher,
        "--student-layers",
        "1",
        "--train-data",
        SST2_DEV,
        "--train-subset",
        "400",
        "--batch-size",
        "8",
        "--lr",
        "1e30",
        "--checkpoint-every",
        "1",
        "-o",
        out,
        check=1,
    )
    line = one_line_error(proc)
    assert "the loss became" in line and "last good checkpoint is" in line and "--resume" in line
    assert not out.exists()
    assert (tmp_path / "s.partial" / "trainer.pt").is_file() and (tmp_path / "s.partial" / "model.safetensors").is_file()


@needs_minilm
def test_diverging_recovery_keeps_the_pruned_model_before_it(teacher, tmp_path):
    out = tmp_path / "p"
    proc = cli(
        "prune",
        teacher,
        "-o",
        out,
        "--heads",
        "2",
        "--train-data",
        SST2_DEV,
        "--train-subset",
        "200",
        "--batch-size",
        "8",
        "--recover-epochs",
        "1",
        "--lr",
        "1e30",
        check=1,
    )
    line = one_line_error(proc)
    assert "recovery: the loss became" in line and "the pruned model before this recovery is kept in" in line
    assert not out.exists()
    kept = tmp_path / "p.partial"
    rec = json.loads((kept / "compression.json").read_text())
    assert rec["diverged"]["round"] == 1 and rec["rounds"][0]["parameters"] < _params(teacher)[1]
    model, n = _params(kept)  # loads, finite, with the heads removed
    assert n == rec["rounds"][0]["parameters"]
    import torch

    assert torch.isfinite(_logits(model)).all()


@needs_minilm
def test_distilling_between_different_tokenizers_is_rejected(teacher, tmp_path):
    vocab = tmp_path / "tok"
    vocab.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(97, 123)]
    (vocab / "vocab.txt").write_text("\n".join(words) + "\n")
    student = _tiny_classifier(tmp_path / "student", layers=1, tokenizer_from=vocab)
    out = tmp_path / "out"
    line = one_line_error(cli("distill", "--teacher", teacher, "--student", student, "--train-data", SST2_DEV, "-o", out, check=2))
    assert "different tokenizers" in line and "shared tokenizer" in line
    assert not out.exists()


DISTILL_BAD = [
    (["--student-layers", "2", "--train-data", "EMPTY"], "has a header but no rows"),
    (["--student-layers", "2", "--train-data", "ZERO"], "is empty"),
    (["--train-data", "DEV"], "give exactly one of --student DIR or --student-layers"),
    (["--student-layers", "9", "--train-data", "DEV"], "the teacher has 3 layers"),
    (["--student-layers", "2,1", "--train-data", "DEV"], "increasing, distinct teacher layers"),
    (["--student-layers", "2", "--train-data", "DEV", "--alpha", "2"], "--alpha: must be <= 1"),
    (["--student-layers", "2", "--train-data", "DEV", "--attention-weight", "1", "--relation-heads", "5"], "does not divide the attention width"),
]


@needs_minilm
@pytest.mark.parametrize("args,expected", DISTILL_BAD, ids=[e[:28] for _, e in DISTILL_BAD])
def test_distill_rejects_bad_input(teacher, tmp_path, args, expected):
    (tmp_path / "empty.tsv").write_text("text\tlabel\n")
    (tmp_path / "zero.tsv").write_text("")
    files = {"EMPTY": tmp_path / "empty.tsv", "ZERO": tmp_path / "zero.tsv", "DEV": SST2_DEV}
    out = tmp_path / "out"
    line = one_line_error(cli("distill", "--teacher", teacher, "-o", out, *[str(files.get(a, a)) for a in args], check=2))
    assert expected in line
    assert not out.exists() and not (tmp_path / "out.partial").exists()


# ---- compression steps in a recipe ---------------------------------------------------------


@needs_minilm
def test_recipe_compresses_exports_quantizes_and_reports_each_step(teacher, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: tiny-compress\nsource: {teacher}\ndata: {{eval: {SST2_DEV}, max_rows: 64}}\n"
        "compress:\n"
        f"  small: {{method: distill, student_layers: 2, train_data: {SST2_DEV}, train_subset: 128, lr: 0.001, attention_weight: 1.0}}\n"
        f"  small-pruned: {{method: prune, from: small, heads: 0.25, train_data: {SST2_DEV}, importance_samples: 64, recover_epochs: 1, train_subset: 64}}\n"
        "  unused: {method: prune, heads: 1}\n"
        "variants:\n  fp32: {method: float, gate: false}\n  small: {model: small, method: float}\n"
        "  pruned: {model: small-pruned, method: float}\n  pruned-int8: {model: small-pruned, method: dynamic}\n"
        "targets:\n  - {name: local, iterations: 64, duration: 10, shape: 'batch=1,sequence=32', max_cv: 10.0}\n"
    )
    run_dir = tmp_path / "run"
    cli("run", recipe, "--run-dir", run_dir, check=0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert all(s == "ok" for s in summary["stages"].values()), summary
    assert "compress:unused" not in summary["stages"]  # no variant uses it: not built
    assert {"compress:small", "compress:small-pruned", "export:small", "export:small-pruned"} <= set(summary["stages"])
    report = json.loads((run_dir / "report.json").read_text())
    rows = {v["name"]: v for v in report["variants"]}
    assert rows["small"]["parameters"] < rows["fp32"]["parameters"] and rows["pruned"]["parameters"] < rows["small"]["parameters"]
    assert rows["pruned-int8"]["compression"] == pytest.approx(rows["fp32"]["model_bytes"] / rows["pruned-int8"]["model_bytes"])
    assert all(rows[n].get("accuracy") is not None and rows[n]["flops"]["gflops"] > 0 for n in rows)
    assert rows["small"]["flops"]["gflops"] < rows["fp32"]["flops"]["gflops"]
    steps = {c["name"]: c for c in report["compress"]}
    assert steps["small"]["status"] == "ok" and steps["small-pruned"]["parameters"]["after"] < steps["small-pruned"]["parameters"]["before"]
    # the recipe's labeled data.eval measures each step before and after (a step does not name it itself)
    assert all({"before", "after"} <= set(steps[n]["accuracy"]) for n in ("small", "small-pruned")), steps
    md = (run_dir / "report.md").read_text()
    assert "## Compression steps (PyTorch)" in md and "| small-pruned | prune | small | ok |" in md
    assert "Compression steps" in (run_dir / "report.html").read_text()
    # the compressed models are checkpoints in the run dir and are not rebuilt when nothing changed
    assert (run_dir / "models" / "small-pruned" / "compression.json").is_file()
    again = cli("run", recipe, "--run-dir", run_dir, check=0)
    assert "[run]" not in again.stdout and "[cached] compress:small:" in again.stdout
    # a changed pruning setting rebuilds that step and what follows, not the distillation
    third = cli("run", recipe, "--run-dir", run_dir, "--set", "compress.small-pruned.heads=0.5", check=0)
    assert "[cached] compress:small:" in third.stdout and "[run]    compress:small-pruned" in third.stdout
    assert "[run]    export:small-pruned" in third.stdout and "[cached] export:small:" in third.stdout


# ---- the real reference classifier -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(SST2_FIXTURE_BUDGET_S + 300)
@needs_minilm
def test_prune_20_percent_of_heads_of_the_sst2_classifier_and_recover(sst2_classifier, tmp_path):
    """MiniLM-L6 fine-tuned on SST-2 (the session's classifier), 20 % of its 72 heads removed by
    gradient importance (256 samples), one recovery epoch on 1,000 training rows, accuracy on all of SST-2 dev
    (measured: 0.8096 before, 0.8005 pruned, 0.8050 recovered; 60 s, where 2,000 rows and 512 samples took 98 s)."""
    out = tmp_path / "pruned"
    proc = cli(
        "prune",
        sst2_classifier,
        "-o",
        out,
        "--heads",
        "0.2",
        "--train-data",
        SST2_TRAIN,
        "--data",
        SST2_DEV,
        "--importance-samples",
        "256",
        "--recover-epochs",
        "1",
        "--train-subset",
        "1000",
        "--json",
        cwd=TESTS.parent,
        check=0,
        timeout=400,
    )
    rec = json.loads(proc.stdout)
    acc = rec["accuracy"]
    print(
        f"\nSST-2 dev: before {acc['before']:.4f}, pruned {rec['rounds'][0]['accuracy_after_prune']:.4f}, "
        f"recovered {acc['after']:.4f}; parameters {rec['parameters']['before']:,} -> {rec['parameters']['after']:,}"
    )
    assert rec["removed"]["heads_total"] == 14 and rec["removed"]["heads_before"] == 72
    assert rec["parameters"]["before"] - rec["parameters"]["after"] == 14 * 4 * 32 * 384 + 14 * 3 * 32  # q,k,v rows + biases, output columns
    assert acc["eval_rows"] == 872 and acc["before"] > SST2_TEST_MIN_ACCURACY
    assert acc["after"] >= acc["before"] - 0.01, "recovery must bring a 20 % head-pruned MiniLM within 1 point of the original"
