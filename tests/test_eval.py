"""`edgedeploy eval`: metrics by hand, BANKING77 (77 string labels) and text pairs, fidelity."""

import json
import shutil

import pytest
from conftest import DATASETS, cli, needs_minilm, one_line_error

from edgedeploy.quality.evaluate import classification_metrics


def test_metrics_by_hand():
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], {0: "a", 1: "b", 2: "c"})
    assert m["accuracy"] == pytest.approx(0.6)
    # a: p=1/2 r=1/2 f1=.5; b: p=2/3 r=1 f1=.8; c: nothing right, f1=0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["per_class"]["b"] == {
        "support": 2,
        "predicted": 3,
        "correct": 2,
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
    }
    assert m["per_class"]["c"]["support"] == 1 and m["per_class"]["c"]["predicted"] == 0


@pytest.fixture(scope="module")
def banking_classifier(tmp_path_factory):
    """A randomly initialised DistilBERT with BANKING77's 77 intents as labels and the
    MiniLM tokenizer (no fine-tuned checkpoint can be downloaded here)."""
    import torch
    import transformers as tf

    from edgedeploy.core.sources import embedded_path
    from edgedeploy.data.datasets import iter_rows
    from edgedeploy.export import export

    names = sorted({r["label"] for r in iter_rows(DATASETS / "banking77" / "train.tsv", ("label",))})
    assert len(names) == 77
    d = tmp_path_factory.mktemp("b77")
    torch.manual_seed(0)
    cfg = tf.DistilBertConfig(
        vocab_size=30522,
        dim=64,
        n_layers=2,
        n_heads=2,
        hidden_dim=128,
        num_labels=77,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    tf.DistilBertForSequenceClassification(cfg).eval().save_pretrained(d / "src")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy2(embedded_path("minilm-l6") / f, d / "src" / f)
    return export(str(d / "src"), d / "clf")


@needs_minilm
def test_banking77_string_labels_and_fidelity(banking_classifier, tmp_path):
    from edgedeploy.quantize.api import quantize

    dev = DATASETS / "banking77" / "dev.tsv"
    q = quantize(banking_classifier.path, tmp_path / "int8", "dynamic", eval_data=dev, eval_samples=16)
    out = tmp_path / "eval.json"
    proc = cli("eval", q.path, "--data", dev, "--reference", banking_classifier.path, "--max-rows", "200", "-o", out, check=0)
    assert "accuracy" in proc.stdout and "macro-F1" in proc.stdout and "top-1 agreement" in proc.stdout
    res = json.loads(out.read_text())
    t = res["task"]
    assert res["samples"] == 200 and sum(c["support"] for c in t["per_class"].values()) == 200
    assert 0.0 <= t["accuracy"] <= 1.0 and 0.0 <= t["macro_f1"] <= 1.0
    assert set(t["per_class"]) <= set(json.loads((banking_classifier.path / "config.json").read_text())["label2id"])
    f = res["fidelity"]
    assert f["samples"] == 200 and 0.9 < f["mean_cosine"] <= 1.0 and 0.0 <= f["top1_agreement"] <= 1.0


@needs_minilm
def test_text_pairs_and_bad_columns(banking_classifier, tmp_path):
    rows = (DATASETS / "sst2" / "dev.tsv").read_text().splitlines()[1:9]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "premise\thypothesis\tlabel\n" + "".join(f"{a.split(chr(9))[0]}\t{b.split(chr(9))[0]}\tcard_arrival\n" for a, b in zip(rows, rows[1:]))
    )
    res = json.loads(
        cli(
            "eval", banking_classifier.path, "--data", pairs, "--text-column", "premise", "--text-pair-column", "hypothesis", "--json", check=0
        ).stdout
    )
    assert res["samples"] == 7 and res["task"]["per_class"]["card_arrival"]["support"] == 7
    line = one_line_error(cli("eval", banking_classifier.path, "--data", pairs, check=2))
    assert "no column 'text'" in line and "'premise'" in line


def test_tsv_reader_handles_quoted_multiline_fields():
    from edgedeploy.data.datasets import iter_rows

    rows = list(iter_rows(DATASETS / "banking77" / "train.tsv", ("text", "label")))
    assert all(r["label"] for r in rows)  # no row split in the middle of a quoted text
    assert any("\n" in r["text"] for r in rows)
    assert len({r["label"] for r in rows}) == 77
    assert len(list(iter_rows(DATASETS / "sst2" / "dev.tsv", ("text", "label")))) == 872
