"""Untrusted input, one CLI-level test per defect the hostile-input issue lists (the remote ones
are in test_ssh.py): the documented exit code, one error line, no traceback, nothing written
outside its place and nothing lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli, one_line_error

from edgedeploy.core.artifact import MANIFEST, digest_of_files

TINY = ("--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64")


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "mlp"
    cli("export", *TINY, "-o", out, check=0)
    return out


@pytest.fixture(scope="module")
def text_art(tmp_path_factory, tiny_classifier_dir):
    """A text classifier with a tokenizer, so data files are read as text."""
    out = tmp_path_factory.mktemp("hostile-text") / "clf"
    cli("export", tiny_classifier_dir, "-o", out, check=0)
    return out


@pytest.fixture
def copy(art, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(art, d)
    return d


def rehash(d: Path, **changes) -> dict:
    """Forge the manifest as an attacker would: change fields, then fix every hash so only the
    check under test can catch it."""
    m = json.loads((d / MANIFEST).read_text())
    m.update(changes)
    if "files" not in changes:
        m["files"] = {
            p.relative_to(d).as_posix(): {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
            for p in sorted(d.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != MANIFEST
        }
    m["digest"] = digest_of_files(m["files"])
    (d / MANIFEST).write_text(json.dumps(m))
    return m


def refused(*args, code=2, needle=None):
    line = one_line_error(cli(*args, check=code))
    if needle:
        assert needle in line, line
    return line


# ---- containment: a manifest names files inside its artifact, and only those -----------------


@pytest.mark.parametrize("model_file", ["/etc/hostname", "../outside.onnx", "a/../../x.onnx", "C:\\model.onnx"])
def test_model_file_outside_the_artifact_is_refused_everywhere(copy, tmp_path, model_file):
    rehash(copy, model_file=model_file)
    for cmd in (("verify", copy), ("bench", copy, "--iterations", "2"), ("quantize", copy, "-o", tmp_path / "q", "--method", "dynamic")):
        refused(*cmd, needle=model_file)
    assert not (tmp_path / "q").exists()


def test_empty_file_list_is_not_ok(copy):
    rehash(copy, files={})
    assert "does not list its model file" in refused("verify", copy)


def test_unlisted_file_is_named(copy):
    (copy / "notes.txt").write_text("added later")
    assert "notes.txt is not listed" in refused("verify", copy)


def test_symlink_in_the_artifact_is_refused_and_never_copied(copy, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the artifact")
    (copy / "notes.txt").symlink_to(secret)
    rehash(copy)  # the forger lists the link's target bytes as notes.txt
    assert "symbolic link" in refused("verify", copy)
    refused("quantize", copy, "-o", tmp_path / "q", "--method", "dynamic", needle="symbolic link")
    assert not (tmp_path / "q").exists()


def test_quantize_copies_only_listed_files(copy, tmp_path):
    (copy / "vocab.txt").write_text("a\nb\n")
    rehash(copy)
    cli("quantize", copy, "-o", tmp_path / "q", "--method", "dynamic", check=0)
    files = json.loads((tmp_path / "q" / MANIFEST).read_text())["files"]
    assert sorted(files) == ["model.onnx", "vocab.txt"]
    cli("verify", tmp_path / "q", check=0)


def test_zero_byte_model_does_not_verify(copy):
    (copy / "model.onnx").write_bytes(b"")
    rehash(copy)
    assert "model.onnx is empty" in refused("verify", copy)


def test_unlisted_external_data_is_refused(copy):
    import onnx

    model = onnx.load(str(copy / "model.onnx"))
    onnx.save(model, str(copy / "model.onnx"), save_as_external_data=True, location="weights.bin", size_threshold=0)
    m = rehash(copy)
    m["files"].pop("weights.bin")
    rehash(copy, files=m["files"])
    (copy / "weights.bin").unlink()  # tampered: the unlisted data is gone, then replaced
    (copy / "weights.bin").write_bytes(os.urandom(1024))
    line = refused("verify", copy)
    assert "weights.bin" in line


def test_listed_external_data_verifies(copy):
    import onnx

    model = onnx.load(str(copy / "model.onnx"))
    onnx.save(model, str(copy / "model.onnx"), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    rehash(copy)
    cli("verify", copy, check=0)


def test_manifest_types_are_checked(copy):
    rehash(copy, inputs="x")
    assert "inputs" in refused("verify", copy)


def test_oversized_manifest_is_refused(copy):
    m = json.loads((copy / MANIFEST).read_text())
    m["padding"] = "x" * (17 << 20)
    (copy / MANIFEST).write_text(json.dumps(m))
    assert "too large for a manifest" in refused("verify", copy)


# ---- lies and data loss ------------------------------------------------------------------------


def test_quantize_onto_its_parent_is_refused_and_the_parent_survives(copy, tmp_path):
    before = (copy / "model.onnx").read_bytes()
    refused("quantize", copy, "-o", copy, "--force", "--method", "dynamic", needle="parent artifact")
    refused("quantize", copy, "-o", copy / "inner", "--method", "dynamic", needle="parent artifact")
    assert (copy / "model.onnx").read_bytes() == before
    cli("verify", copy, check=0)


def test_export_into_its_source_is_refused(tmp_path):
    from hf_configs import build

    src = build("bert", tmp_path / "bert")
    refused("export", src, "-o", src / "onnx", needle="source model")


@pytest.mark.parametrize("flag", [("--eval-samples", "0"), ("--calib-samples", "0")])
def test_sample_counts_below_one_are_refused(art, tmp_path, flag):
    refused("quantize", art, "-o", tmp_path / "q", "--method", "dynamic", *flag)
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_threads_below_one_are_refused(art, threads):
    assert "--threads" in refused("bench", art, "--threads", threads)


def test_bench_output_that_is_a_directory_is_refused_before_measuring(art, tmp_path):
    start = time.monotonic()
    refused("bench", art, "--shape", "batch=1", "--iterations", "100000", "--duration", "600", "-o", tmp_path, needle="is a directory")
    assert time.monotonic() - start < 30  # it did not measure first


@pytest.mark.parametrize(
    "flags, needle",
    [
        (("--save-outputs", "{file}"), "is a file"),
        (("--save-outputs", "{art}"), "the artifact"),
        (("--save-outputs", "{art}/sub"), "the artifact"),
        (("-o", "{art}/r.json"), "the artifact"),
        (("--scenario", "offline", "--concurrency", "100000"), "--concurrency"),
    ],
)
def test_bench_never_writes_into_an_artifact_or_over_a_file(copy, tmp_path, flags, needle):
    f = tmp_path / "plain"
    f.write_text("keep")
    args = [a.format(file=f, art=copy) for a in flags]
    refused("bench", copy, "--shape", "batch=1", "--iterations", "2", *args, needle=needle)
    cli("verify", copy, check=0)
    assert f.read_text() == "keep"


def test_eval_output_checked_before_evaluating(copy, tmp_path):
    data = tmp_path / "x.npz"
    import numpy as np

    np.savez(data, x=np.ones((2, 64), np.float32))
    refused("eval", copy, "--data", data, "--no-labels", "--reference", copy, "-o", tmp_path, needle="is a directory")
    refused("eval", copy, "--data", data, "--no-labels", "--reference", copy, "-o", copy / "e.json", needle="the artifact")
    cli("verify", copy, check=0)


def test_bench_output_in_a_missing_directory_is_created(art, tmp_path):
    out = tmp_path / "new" / "deeper" / "r.json"
    cli("bench", art, "--shape", "batch=1", "--iterations", "3", "--warmup", "0", "-o", out, check=0)
    assert json.loads(out.read_text())["results"]


def test_results_json_is_strict_json(art, tmp_path):
    from edgedeploy.core.atomic import write_json_atomic

    write_json_atomic(tmp_path / "x.json", {"a": float("nan"), "b": [float("inf")]})
    assert json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": [None]}


# ---- values checked before work starts --------------------------------------------------------


@pytest.mark.parametrize(
    "extra, needle",
    [
        (("--shape", "batch=1000000000000"), "--shape"),
        (("--shape", "batch=40000000"), "GiB"),
        (("--scenario", "server", "--qps", "-5"), "--qps"),
        (("--scenario", "server", "--qps", "0"), "--qps"),
        (("--iterations", "0"), "--iterations"),
        (("--duration", "nan"), "--duration"),
    ],
)
def test_bad_measurement_values(art, extra, needle):
    assert needle in refused("bench", art, *extra)


def test_server_scenario_honours_duration(art):
    start = time.monotonic()
    cli("bench", art, "--shape", "batch=1", "--scenario", "server", "--qps", "0.001", "--duration", "2", "--warmup", "0", check=0)
    assert time.monotonic() - start < 30  # the first arrival used to be drawn with a mean of 1,000 s


def test_stale_quantize_scratch_is_removed(art, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".edgedeploy-quant-q-{dead.pid}-abc123"
    stale.mkdir()
    (stale / "preprocessed.onnx").write_bytes(b"x" * 1000)
    cli("quantize", art, "-o", tmp_path / "q", "--method", "dynamic", check=0)
    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgedeploy-")]


# ---- data files: exit 2 naming the file (and the line) ----------------------------------------


@pytest.mark.parametrize(
    "name, body, needle",
    [
        ("garbage.tsv", b"text\tlabel\n\x00\xff\xfe\x80 binary\t1\n", "not UTF-8"),
        ("bad.jsonl", b'{"text": "fine", "label": 1}\n{"text": broken\n', ":2: not valid JSON"),
        ("list.jsonl", b'{"text": "fine", "label": 1}\n["text", "not an object"]\n', "one JSON object per line"),
        ("huge.csv", b'text,label\n"' + b"a" * 200_000 + b'",1\n', ":2: malformed CSV"),
    ],
)
def test_bad_data_files(text_art, tmp_path, name, body, needle):
    f = tmp_path / name
    f.write_bytes(body)
    for cmd in (
        ("quantize", text_art, "-o", tmp_path / "q", "--method", "static", "--calib-data", f),
        ("eval", text_art, "--data", f, "--label-column", "label"),
    ):
        line = refused(*cmd)
        assert name in line and needle in line, line
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("kind", ["object", "shape", "dtype", "garbage", "single"])
def test_bad_npz_inputs(art, tmp_path, kind):
    import numpy as np

    f = tmp_path / f"{kind}.npz"
    if kind == "object":
        np.savez(f, x=np.array([{"a": 1}, None], dtype=object))
    elif kind == "shape":
        np.savez(f, x=np.zeros((2, 7), np.float32))
    elif kind == "dtype":
        np.savez(f, x=np.array([["a"] * 64]))
    elif kind == "garbage":
        f.write_bytes(b"PK\x03\x04" + os.urandom(200))
    else:
        f = tmp_path / "single.npy"
        np.save(f, np.zeros((1, 64), np.float32))
    assert f.name in refused("bench", art, "--inputs", f, "--iterations", "2")


def _hf_copy(tiny_classifier_dir, tmp_path):
    d = tmp_path / "hf"
    shutil.copytree(tiny_classifier_dir, d)
    return d


def test_config_json_that_is_a_list(tiny_classifier_dir, tmp_path):
    d = _hf_copy(tiny_classifier_dir, tmp_path)
    (d / "config.json").write_text("[1, 2, 3]")
    assert "config.json" in refused("export", d, "-o", tmp_path / "out")


def test_safetensors_header_that_is_a_list(tiny_classifier_dir, tmp_path):
    d = _hf_copy(tiny_classifier_dir, tmp_path)
    header = b"[1, 2, 3]"
    (d / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    assert "model.safetensors" in refused("export", d, "-o", tmp_path / "out")


def test_malicious_pickle_is_refused_in_one_line(tiny_classifier_dir, tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    d = _hf_copy(tiny_classifier_dir, tmp_path)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    refused("export", d, "-o", tmp_path / "out")
    assert not (tmp_path / "pwned").exists()


def test_graph_with_an_unknown_op(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="evil.domain")], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.domain", 1)])
    d = tmp_path / "odd"
    d.mkdir()
    import onnx

    onnx.save(model, str(d / "model.onnx"))
    (d / MANIFEST).write_text(
        json.dumps(
            {
                "schema_version": 1,
                "source": {"kind": "onnx", "name": "odd"},
                "files": {},
                "opset": 17,
                "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 4]}],
                "size_bytes": 0,
            }
        )
    )
    rehash(d)
    assert "NoSuchOp" in refused("bench", d, "--iterations", "2")
    refused("quantize", d, "-o", tmp_path / "q", "--method", "dynamic")


# ---- inventories and hosts: exit 2 before any connection, never retried -------------------------


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"hosts:\n  - host: 12345\n", "hosts[0].host"),
        (b"hosts:\n  - host: [a, b]\n", "hosts[0].host"),
        (b"hosts:\n  - [pi@a]\n", "hosts[0]"),
        (b"hosts:\n  - host: \xff\xfe\n", "not a text file"),
        (b"hosts:\n  - host: pi@a\n    profil: rpi4\n", "profil"),
        (b"hosts:\n  - pi@a\n  - host: pi@a\n", "listed twice"),
        (b"hosts:\n  - pi@a:99999\n", "out of range"),
        (b"hosts:\n  - 'pi@a b'\n", "whitespace"),
        (b"hosts: {}\n", "expected a list"),
    ],
)
def test_bad_inventories(art, tmp_path, body, needle):
    inv = tmp_path / "hosts.yaml"
    inv.write_bytes(body)
    start = time.monotonic()
    line = refused("bench", art, "--hosts", inv, "--profile", "rpi4")
    assert needle in line, line
    assert time.monotonic() - start < 10  # no connection, no retries


@pytest.mark.parametrize(
    "host, needle", [("pi@host:99999", "out of range"), ("pi@host:0", "out of range"), ("pi@ho\tst", "whitespace"), ("-oProxyCommand=x", "'-'")]
)
def test_bad_host_flags(art, host, needle):
    start = time.monotonic()
    assert needle in refused("bench", art, "--host", host, "--profile", "rpi4")
    assert time.monotonic() - start < 10


def test_duplicate_host_flags(art):
    assert "listed twice" in refused("bench", art, "--host", "pi@a", "--host", "pi@a", "--profile", "rpi4")


def test_yaml_alias_bomb_inventory_is_refused_fast(art, tmp_path):
    inv = tmp_path / "bomb.yaml"
    inv.write_text(alias_bomb())
    start = time.monotonic()
    assert "aliases" in refused("bench", art, "--hosts", inv, "--profile", "rpi4")
    assert time.monotonic() - start < 5


def alias_bomb(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_recipe_is_refused_fast(tmp_path):
    recipe = tmp_path / "bomb.yaml"
    text = alias_bomb()
    assert len(text) < 1024
    recipe.write_text("source: minilm-l6\nvariants: {a: {method: dynamic}}\ntargets: [{name: local}]\n" + text)
    start = time.monotonic()
    assert "aliases" in refused("run", recipe, "--run-dir", tmp_path / "run")
    assert time.monotonic() - start < 1.0
    assert not (tmp_path / "run").exists()


def test_run_dir_that_is_a_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("source: minilm-l6\nvariants: {a: {method: dynamic}}\ntargets: [{name: local}]\n")
    f = tmp_path / "file"
    f.write_text("not a dir")
    assert "run-dir" in refused("run", recipe, "--run-dir", f)
    assert f.read_text() == "not a dir"


# ---- the environment: exit 3 naming the path; a bug: exit 1, one line --------------------------


def test_immutable_output_dir_is_exit_3(art, tmp_path):
    d = tmp_path / "locked"
    d.mkdir()
    if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        line = refused("quantize", art, "-o", d / "q", "--method", "dynamic", code=3)
        assert str(d) in line
        line = refused("bench", art, "--shape", "batch=1", "--iterations", "2", "-o", d / "r.json", code=3)
        assert str(d) in line
    finally:
        subprocess.run(["chattr", "-i", str(d)])


def test_output_under_a_file_is_exit_3(art, tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    line = refused("bench", art, "--shape", "batch=1", "--iterations", "2", "-o", f / "r.json", code=3)
    assert str(f) in line


def test_os_error_lines_name_the_path_and_the_fix():
    import errno

    from edgedeploy.core.errors import describe_os_error

    line = describe_os_error(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"))
    assert line.startswith("/mnt/ro/out: Read-only file system;") and "write somewhere else" in line
    assert "disk is full" in describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/x"))


def test_unexpected_errors_are_one_line_exit_1(art, monkeypatch):
    import edgedeploy.cli.verify as verify_cmd

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(verify_cmd.Artifact, "load", broken)
    line = refused("verify", art, code=1)
    assert "internal error: ZeroDivisionError: a bug; rerun with --debug" in line


# ---- files respect the umask --------------------------------------------------------------------


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "a"
        cli("export", *TINY, "-o", out, check=0)
        cli("bench", out, "--shape", "batch=1", "--iterations", "3", "--warmup", "0", "-o", tmp_path / "r.json", check=0)
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == 0o755
    for f in out.iterdir():
        assert (f.stat().st_mode & 0o777) == 0o644, f
    assert ((tmp_path / "r.json").stat().st_mode & 0o777) == 0o644


def test_recipe_values_fail_validation_not_a_minute_in(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "source: minilm-l6\nvariants: {a: {method: dynamic}}\n"
        "targets:\n  - {name: local, shape: 'batch=abc', iterations: -1}\n  - {name: big, shape: 'batch=1000000000000'}\n"
        "budgets: {max_p90_ms: .nan, max_size_mb: .inf}\n"
    )
    proc = cli("run", recipe, "--run-dir", tmp_path / "run", check=2)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgedeploy: error:")]
    for needle in ("targets.0.shape", "targets.0.iterations", "targets.1.shape", "budgets.max_p90_ms", "budgets.max_size_mb"):
        assert any(needle in ln for ln in lines), (needle, proc.stderr)
    assert not (tmp_path / "run").exists()
