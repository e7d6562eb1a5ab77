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
from edgedeploy.core.manifest import FileEntry

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
    if all(isinstance(f, dict) and "sha256" in f for f in m["files"].values()):
        m["digest"] = digest_of_files({n: FileEntry.model_construct(**f) for n, f in m["files"].items()})
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


def test_a_server_run_too_slow_to_reach_p99_is_refused_before_it_starts(art):
    """662 queries at 0.001 qps would take 7.7 days: exit 2 at once, saying what would do."""
    start = time.monotonic()
    line = refused("bench", art, "--shape", "batch=1", "--scenario", "server", "--qps", "0.001", "--duration", "2", "--warmup", "0")
    assert "662 queries p99 needs" in line and "raise --qps (at least 1.10)" in line and time.monotonic() - start < 30


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
    import edgedeploy.cli.verify_cmd as verify_cmd

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


# ---- round 2: write only where it is ours --------------------------------------------------------


def _state(path: Path):
    st = os.lstat(path)
    return st.st_mode, st.st_mtime_ns, st.st_ino, st.st_rdev


@pytest.mark.parametrize("kind", ["device", "fifo", "symlink", "socket"])
def test_outputs_never_replace_what_is_not_a_regular_file(art, tmp_path, kind):
    import socket
    import stat as st

    if kind == "device":
        target = Path("/dev/full")
    elif kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "real.json").write_text("keep")
        target = tmp_path / "link.json"
        target.symlink_to(tmp_path / "real.json")
    else:
        target = tmp_path / "sock"
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(target))
    import numpy as np

    data = tmp_path / "x.npz"
    np.savez(data, x=np.ones((2, 64), np.float32))
    before = _state(target)
    for cmd in (
        ("bench", art, "--shape", "batch=1", "--iterations", "2", "-o", target),
        ("eval", art, "--data", data, "--no-labels", "--reference", art, "-o", target),
    ):
        line = refused(*cmd)
        assert str(target) in line and "is a" in line, line
    assert _state(target) == before  # same type, inode and mtime: nothing renamed over it
    if kind == "device":
        assert st.S_ISCHR(os.lstat(target).st_mode)
    if kind == "symlink":
        assert (tmp_path / "real.json").read_text() == "keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_the_write_helper_refuses_a_fifo_and_a_link(tmp_path):
    from edgedeploy.core.atomic import write_json_atomic
    from edgedeploy.core.errors import BadInput

    os.mkfifo(tmp_path / "p")
    (tmp_path / "l").symlink_to(tmp_path / "elsewhere")
    for name in ("p", "l"):
        with pytest.raises(BadInput, match="regular files"):
            write_json_atomic(tmp_path / name, {"a": 1})
    assert not (tmp_path / "elsewhere").exists()


def test_an_artifact_output_that_is_a_link_is_refused_even_with_force(art, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real")
    refused("quantize", art, "-o", tmp_path / "out", "--method", "dynamic", "--force", needle="symbolic link")
    assert (tmp_path / "out").is_symlink() and not any((tmp_path / "real").iterdir())


def _fill(mnt: Path, free: int) -> None:
    """Leave ``free`` bytes of the 256 KiB tmpfs at ``mnt``."""
    (mnt / "fill").unlink(missing_ok=True)
    with open(mnt / "fill", "wb") as fh:
        fh.write(b"\0" * (256 * 1024 - free))


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs, nearly filled: a real ENOSPC (needs root and mount; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        _fill(mnt, 8192)  # room for a directory, not for a model
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_during_quantize_is_exit_3_naming_the_output(art, full_disk):
    big = full_disk / "q"
    line = refused("quantize", art, "-o", big, "--method", "dynamic", code=3)
    assert str(big) in line and "No space left" in line, line
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]  # no staging, no scratch, no partial artifact


def test_disk_full_during_save_outputs_leaves_nothing(art, full_disk):
    out = full_disk / "outs"
    _fill(full_disk, 0)  # a folder takes no data page on tmpfs; the .npz (about 1.5 KiB) gets none
    line = refused("bench", art, "--shape", "batch=1", "--iterations", "2", "--save-outputs", out, code=3)
    assert str(out / "mlp.npz") in line and "No space left" in line, line
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]  # no empty .npz, no temp file, no empty folder


def test_disk_full_during_a_results_write_is_exit_3_naming_it(art, full_disk):
    _fill(full_disk, 0)
    out = full_disk / "r.json"
    line = refused("bench", art, "--shape", "batch=1", "--iterations", "2", "-o", out, code=3)
    assert str(out) in line, line
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]


# ---- round 2: every numeric setting has a range, from any source ---------------------------------


def test_threads_far_above_the_cpus_are_refused_before_any_session(art):
    start = time.monotonic()
    assert "--threads" in refused("bench", art, "--threads", "100000")
    cpus = os.cpu_count() or 1
    line = refused("bench", art, "--shape", "batch=1", "--threads", str(4 * cpus + 1))
    assert "--threads" in line and f"1..{4 * cpus}" in line, line
    assert time.monotonic() - start < 20


def _profile(tmp_path, section, key, value, name="bad"):
    doc = json.loads((Path(__file__).resolve().parents[1] / "device_profiles" / "rpi4.json").read_text())
    doc[section][key] = value
    doc["name"] = name
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))  # json writes NaN as the bare NaN that Python's reader accepts
    return path


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("run", "intra_op_threads", 1_000_000_000),
        ("run", "inter_op_threads", 10**18),
        ("run", "intra_op_threads", 17),  # 4 per core of the rpi4's 4 cores
        ("peaks", "fp32_gflops", float("nan")),
        ("peaks", "memory_bandwidth_gbs", -1.0),
        ("peaks", "int8_gops", float("inf")),
        ("target", "memory_gb", 0),
    ],
)
def test_profile_numbers_out_of_range(art, tmp_path, section, key, value):
    prof = _profile(tmp_path, section, key, value)
    for cmd in (("bench", art, "--profile", prof, "--iterations", "2"), ("estimate", art, "--profile", prof, "--shape", "batch=1")):
        line = refused(*cmd)
        assert f"{section}.{key}" in line and "bad.json" in line, line


def test_profile_ranges_are_in_its_json_schema():
    doc = json.loads(cli("schema", "profile", check=0).stdout)
    run = doc["properties"]["run"]["properties"]
    assert run["intra_op_threads"]["maximum"] == 1024 and run["intra_op_threads"]["minimum"] == 0
    assert doc["properties"]["peaks"]["properties"]["fp32_gflops"]["exclusiveMinimum"] == 0
    recipe = json.dumps(json.loads(cli("schema", "recipe", check=0).stdout))
    assert '"maximum": 1024' in recipe  # targets' threads


def test_every_bundled_profile_is_inside_the_ranges():
    from edgedeploy.device import profiles

    for name in profiles.available():
        profiles.load(name)


def test_job_file_threads_are_checked_on_the_device(tiny_onnx):
    from edgedeploy.runtimes import job

    for run in ({"intra_op_threads": 10**9}, {"inter_op_threads": 10**18}, {"intra_op_threads": -1}):
        with pytest.raises(job.JobError, match=r"run\.in(tra|ter)_op_threads"):
            job.normalize({"models": [{"name": "t", "path": str(tiny_onnx)}], "profile": {"name": "p", "run": run}})


def test_a_dim_given_twice_is_refused(art):
    assert "given twice" in refused("bench", art, "--shape", "batch=1,batch=2", "--iterations", "2")


# ---- round 2: inputs the runtime cannot feed, companion files, bounded reads ---------------------


def test_a_string_input_is_named_with_its_type(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    s = helper.make_tensor_value_info("s", TensorProto.STRING, ["batch"])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["y"])], "g", [s], [helper.make_tensor_value_info("y", TensorProto.STRING, ["batch"])]
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "str.onnx"))
    line = refused("bench", tmp_path / "str.onnx", "--shape", "batch=1", "--iterations", "2")
    assert "'s'" in line and "tensor(string)" in line and "str.onnx" in line, line


@pytest.fixture
def adopted_text(text_art, tmp_path):
    """An optimum-style directory (model.onnx + tokenizer + config), not an edgedeploy artifact."""
    d = tmp_path / "adopted"
    d.mkdir()
    for f in text_art.iterdir():
        if f.name != MANIFEST:
            shutil.copy2(f, d / f.name)
    return d


@pytest.mark.parametrize("body", [b"this is not JSON", b"[" * 100_000 + b"]" * 100_000, b"[1, 2]"])
def test_a_corrupt_tokenizer_json_is_exit_2_naming_it(adopted_text, tmp_path, body):
    (adopted_text / "tokenizer.json").write_bytes(body)
    data = tmp_path / "d.tsv"
    data.write_text("text\tlabel\ngood film\tpositive\n")
    for cmd in (("eval", adopted_text, "--data", data, "--label-column", "label"), ("adopt", adopted_text, "-o", tmp_path / "a")):
        assert "tokenizer.json" in refused(*cmd)
    assert not (tmp_path / "a").exists()


def _peak_mb(*args) -> tuple[int, str, float]:
    """Run the CLI in a child of a fresh interpreter and report the child's peak RSS (MB)."""
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(f'{p.returncode}\\n{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n' + p.stderr)\n"
    )
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "edgedeploy", *map(str, args)], capture_output=True, text=True, timeout=120
    )
    rc, kb, err = out.stdout.split("\n", 2)
    return int(rc), err, int(kb) / 1024


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


@pytest.mark.parametrize("case", ["onnx", "tsv", "config", "tokenizer"])
def test_oversized_inputs_are_refused_before_reading(adopted_text, tmp_path, case):
    if case == "onnx":
        d = tmp_path / "big"
        d.mkdir()
        _sparse(d / "model.onnx", 3 << 30)
        args, needle = ("inspect", d), "model.onnx"
    elif case == "tsv":
        args, needle = (
            ("eval", adopted_text, "--data", _sparse(tmp_path / "big.tsv", 2 << 30, b"text\tlabel\n"), "--label-column", "label"),
            "big.tsv:2",
        )
    elif case == "config":
        _sparse(adopted_text / "config.json", 1536 << 20)
        args, needle = ("inspect", adopted_text), "config.json"
    else:
        _sparse(adopted_text / "tokenizer.json", 512 << 20)
        args, needle = ("adopt", adopted_text, "-o", tmp_path / "a"), "tokenizer.json"
    rc, err, peak = _peak_mb(*args)
    assert rc == 2, err
    assert needle in err and "Traceback" not in err, err
    assert peak < 200, f"peak {peak:.0f} MB"


def test_external_data_extents_are_checked_at_adopt_and_verify(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    d = tmp_path / "forged"
    d.mkdir()
    import numpy as np
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.zeros(16, np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16])], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(d / "model.onnx"), save_as_external_data=True, location="w.bin", size_threshold=0)
    assert (d / "w.bin").stat().st_size == 64
    m = onnx.load(str(d / "model.onnx"), load_external_data=False)
    for e in m.graph.initializer[0].external_data:
        if e.key == "length":
            e.value = str(1 << 40)
    onnx.save(m, str(d / "model.onnx"))
    assert "w.bin" in refused("adopt", d, "-o", tmp_path / "a")
    assert not (tmp_path / "a").exists()


# ---- round 2: data files are read as data ------------------------------------------------------


def test_a_byte_order_mark_is_dropped(text_art, tmp_path):
    data = tmp_path / "bom.tsv"
    data.write_bytes("\ufefftext\tlabel\ngood film\tpositive\nbad film\tnegative\n".encode())
    doc = json.loads(cli("eval", text_art, "--data", data, "--label-column", "label", "--json", check=0).stdout)
    assert doc["samples"] == 2


def test_an_unknown_label_names_the_data_file_and_line(text_art, tmp_path):
    data = tmp_path / "labels.tsv"
    data.write_text("text\tlabel\ngood film\tpositive\nodd film\tsideways\n")
    line = refused("eval", text_art, "--data", data, "--label-column", "label")
    assert f"{data}:3:" in line and "'sideways'" in line, line


def test_a_stray_quote_in_a_tsv_does_not_swallow_rows(text_art, tmp_path):
    data = tmp_path / "quote.tsv"
    for tail in ('"fine"\tpositive\n', ""):  # the quote closes two lines later, or never
        data.write_text('text\tlabel\n"good film\tpositive\nbad film\tnegative\n' + tail)
        line = refused("eval", text_art, "--data", data, "--label-column", "label")
        assert f"{data}:2:" in line, line


def test_quoted_tsv_fields_as_pandas_writes_them_still_read(text_art, tmp_path):
    from edgedeploy.data.datasets import iter_rows

    data = tmp_path / "pandas.tsv"
    data.write_text('text\tlabel\n"a ""quoted"" word"\tpositive\n"two\nlines"\tnegative\nit\'s 5" tall\tpositive\n')
    rows = list(iter_rows(data, ("text", "label")))
    assert [r["text"] for r in rows] == ['a "quoted" word', "two\nlines", "it's 5\" tall"]
    assert [r.line for r in rows] == [2, 3, 5]


# ---- round 2: every hint names a flag or variable that exists ----------------------------------


def test_export_of_a_reference_model_without_datasets_names_the_variable(tmp_path):
    proc = cli(
        "export", "reference:sst2", "-o", tmp_path / "o", env={"EDGEDEPLOY_DATASETS": str(tmp_path / "none"), "EDGEDEPLOY_CACHE": str(tmp_path / "c")}
    )
    line = one_line_error(proc)
    assert proc.returncode == 2 and "EDGEDEPLOY_DATASETS" in line and "--datasets" not in line, line


def test_every_flag_a_message_suggests_exists():
    """Walk every string literal in the library that suggests a flag (--x) or a variable
    (EDGEDEPLOY_X): each flag is an option of some command (or of the device runtime, or of the
    reference-model builder) and each variable is read somewhere."""
    import ast
    import re

    import click

    from edgedeploy.cli.main import COMMANDS
    from edgedeploy.cli.main import cli as group

    root = Path(__file__).resolve().parents[1]
    ctx = click.Context(group)
    flags = set()
    for name in COMMANDS:
        for p in group.get_command(ctx, name).get_params(ctx):
            flags.update(o.split("/")[0] for o in (*p.opts, *p.secondary_opts))
            flags.update(o for o in p.opts + p.secondary_opts)
    for p in group.params:
        flags.update(p.opts + p.secondary_opts)
    sources = [f for d in ("edgedeploy", "exporters", "runtimes") for f in (root / d).rglob("*.py")]
    text = "\n".join(f.read_text() for f in sources)
    flags.update(re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", text))  # argparse front ends
    flags.update(re.findall(r"add_argument\(\s*\"-[a-z]\",\s*\"(--[a-z0-9-]+)\"", text))
    env_read = set(re.findall(r"environ(?:\.get)?[\[(]\s*\"(EDGEDEPLOY_[A-Z_]+)\"", text)) | set(
        re.findall(r"getenv\(\s*\"(EDGEDEPLOY_[A-Z_]+)\"", text)
    )

    def messages(tree):
        """String pieces of what reaches a user: raised errors, warnings, log lines, echoes."""
        speakers = {"warn", "warning", "info", "error", "echo", "fail_line", "secho"}
        for node in ast.walk(tree):
            call_name = None
            if isinstance(node, ast.Call):
                fn = node.func
                call_name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            if isinstance(node, ast.Raise) or call_name in speakers:
                yield from (n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))

    unknown, seen = [], 0
    for f in sources:
        for node in messages(ast.parse(f.read_text())):
            seen += 1
            if True:
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9]*(?:-[a-z0-9]+)*)", node.value):
                    if flag not in flags and flag not in ("--debug", "--help", "--"):
                        unknown.append(f"{f.relative_to(root)}:{node.lineno}: {flag}")
                for var in re.findall(r"\b(EDGEDEPLOY_[A-Z_]+)\b", node.value):
                    if var not in env_read:
                        unknown.append(f"{f.relative_to(root)}:{node.lineno}: {var}")
    assert seen > 500  # the walk reached the messages
    assert not unknown, "\n".join(unknown)
