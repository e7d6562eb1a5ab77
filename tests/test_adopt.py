"""ONNX models edgedeploy did not export: a bare .onnx file, and the directory optimum writes
(a real optimum export of a small BERT classifier). They are adopted: hashed into a manifest of
source kind onnx whose validation reads "not run"."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import SST2_DEV, cli, one_line_error, optimum_main_export

from edgedeploy.core.artifact import MANIFEST


@pytest.fixture(scope="module")
def optimum_dir(tiny_classifier_dir, tmp_path_factory):
    main_export = optimum_main_export()
    out = tmp_path_factory.mktemp("optimum") / "export"
    main_export(str(tiny_classifier_dir), output=str(out), task="text-classification", library_name="transformers")
    assert (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file()
    return out


def test_quantize_an_optimum_export_writes_an_artifact(optimum_dir, tmp_path):
    src = tmp_path / "export"
    shutil.copytree(optimum_dir, src)
    (src / "notes.txt").write_text("not part of the model")
    out = tmp_path / "int8"
    cli("quantize", src, "-o", out, "--method", "dynamic", "--data", SST2_DEV, check=0)
    m = json.loads((out / MANIFEST).read_text())
    assert m["source"]["kind"] == "onnx" and m["lineage"]["step"] == "quantize:dynamic" and m["lineage"]["parent"]
    assert {"tokenizer.json", "config.json", "vocab.txt", "model.onnx"} <= set(m["files"]) and "notes.txt" not in m["files"]
    assert m["fidelity"]["samples"] == 64 and m["fidelity"]["mean_cosine"] > 0.9  # real SST-2 sentences through its tokenizer
    cli("verify", out, check=0)
    assert not (src / MANIFEST).exists()  # the user's directory is read, never written


def test_bench_inspect_and_estimate_take_a_bare_onnx_file(tiny_onnx, tmp_path):
    out = tmp_path / "r.json"
    cli("bench", tiny_onnx, "--shape", "batch=1", "--iterations", "5", "--warmup", "0", "-o", out, check=0)
    doc = json.loads(out.read_text())
    assert doc["results"][0]["name"] == "tiny" and doc["results"][0]["samples"] == 5
    proc = cli("inspect", tiny_onnx, check=0)
    assert "not run: no PyTorch source" in proc.stdout and "adopt" in proc.stdout
    cli("estimate", tiny_onnx, "--profile", "rpi4", "--shape", "batch=1", check=0)
    assert sorted(p.name for p in tiny_onnx.parent.iterdir()) == ["tiny.onnx"]


def test_eval_an_optimum_export_on_labeled_data(optimum_dir):
    proc = cli("eval", optimum_dir, "--data", SST2_DEV, "--max-rows", "40", "--json", check=0)
    assert json.loads(proc.stdout)["task"]["accuracy"] is not None


def test_adopt_publishes_an_artifact(optimum_dir, tmp_path):
    out = tmp_path / "adopted"
    cli("adopt", optimum_dir, "-o", out, check=0)
    m = json.loads((out / MANIFEST).read_text())
    assert "passed" not in m["validation"] and "no PyTorch source" in m["validation"]["reason"]
    assert m["source"]["family"] == "transformer" and m["vocab_size"] == 30522
    cli("verify", out, check=0)
    assert "already an edgedeploy artifact" in one_line_error(cli("adopt", out, "-o", tmp_path / "again", check=2))
    assert "the model's directory" in one_line_error(cli("adopt", optimum_dir, "-o", optimum_dir, "--force", check=2))
    beside = tmp_path / "models"
    beside.mkdir()
    shutil.copy2(optimum_dir / "model.onnx", beside / "encoder.onnx")
    cli("adopt", beside / "encoder.onnx", "-o", beside / "encoder-artifact", check=0)  # next to a bare .onnx is fine
    cli("verify", beside / "encoder-artifact", check=0)


def test_hostile_onnx_inputs(tiny_onnx, tmp_path):
    import onnx

    d = tmp_path / "m"
    d.mkdir()
    (d / "empty.onnx").write_bytes(b"")
    assert "is empty" in one_line_error(cli("bench", d / "empty.onnx", "--shape", "batch=1", check=2))
    (d / "link.onnx").symlink_to(tiny_onnx)
    assert "symbolic link" in one_line_error(cli("inspect", d / "link.onnx", check=2))
    (d / "junk.onnx").write_bytes(b"\x08\x07 not a protobuf \xff" * 10)
    assert "junk.onnx" in one_line_error(cli("bench", d / "junk.onnx", "--shape", "batch=1", check=2))
    model = onnx.load(str(tiny_onnx))
    onnx.save(model, str(d / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    cli("bench", d / "ext.onnx", "--shape", "batch=1", "--iterations", "3", "--warmup", "0", check=0)
    (d / "ext.data").unlink()
    (d / "ext.data").symlink_to(tmp_path / "elsewhere.data")
    assert "external data" in one_line_error(cli("bench", d / "ext.onnx", "--shape", "batch=1", check=2))
