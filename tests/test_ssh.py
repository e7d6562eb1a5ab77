"""Benchmarks over SSH against a real sshd on 127.0.0.1. No mocks of the transport."""

import json
import os
import re
import subprocess
import sys
import threading
import time
import venv

import pytest
from conftest import cli, one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sshd import Server, ensure_sshd

from edgedeploy.core.artifact import Artifact
from edgedeploy.device import ssh
from edgedeploy.export import export

# Skipped only outside `make test` and CI; there a missing sshd fails these tests (EDGEDEPLOY_REQUIRE_SSHD=1).
pytestmark = pytest.mark.skipif(
    ensure_sshd() is not None and not (os.environ.get("CI") or os.environ.get("EDGEDEPLOY_REQUIRE_SSHD")), reason=ensure_sshd() or ""
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("sshd"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return export(None, tmp_path_factory.mktemp("a") / "mlp", factory="factories:tiny_mlp", input=("x:float32:batch,64",))


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A ~4 MB model, so an upload can be slowed down and cut."""
    return export(None, tmp_path_factory.mktemp("w") / "wide", factory="factories:wide_mlp", input=("x:float32:batch,1024",))


def remote_bench(server, art, *extra, config=None, host="testpi", check=None, python=None, paths=None):
    """``bench`` of ``art`` (or of ``paths``) on the loopback device, with ``python`` there."""
    return cli(
        "bench",
        *(paths or [art.path]),
        "--host",
        host,
        "--ssh-config",
        config or server.config,
        "--profile",
        "rpi4",
        "--remote-python",
        python or sys.executable,
        "--shape",
        "batch=1",
        "--iterations",
        "30",
        "--warmup",
        "2",
        *extra,
        check=check,
    )


def test_full_remote_bench(server, mlp, tmp_path):
    import numpy as np

    out = tmp_path / "r.json"
    proc = remote_bench(server, mlp, "-o", out, "--save-outputs", tmp_path / "remote-out", "--note", "loopback test device", check=0)
    assert "NOTE: loopback test device" in proc.stdout
    cli("bench", mlp.path, "--shape", "batch=1", "--iterations", "3", "--save-outputs", tmp_path / "local-out", check=0)
    remote_arrays, local_arrays = np.load(tmp_path / "remote-out" / "mlp.npz"), np.load(tmp_path / "local-out" / "mlp.npz")
    assert sorted(remote_arrays.files) == ["input:x", "output:output"]
    for k in remote_arrays.files:  # same seeded inputs, same outputs on both sides
        np.testing.assert_allclose(remote_arrays[k], local_arrays[k], atol=1e-6)
    assert "device testpi" in proc.stdout and "p50 ms" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["measured"] == "measured on testpi" and doc["remote"]["check"]["onnxruntime"]
    assert doc["results"][0]["samples"] == 30 and doc["profile"] == "rpi4"
    assert doc["environment"]["threads"]["intra_op"] == 4  # the profile's threads, set explicitly
    assert server.leftovers() == []


def test_a_second_bench_of_the_same_model_uploads_no_model(server, wide, tmp_path):
    """The device keeps models in its content-addressed cache (hashed again there before each
    run): the second bench of the same artifact uploads only the job and the runtime, and says
    the model was cached; --no-device-cache uploads it with the run again."""
    remote_bench(server, wide, "-o", tmp_path / "1.json", check=0)
    second = remote_bench(server, wide, "-o", tmp_path / "2.json", check=0)
    cache = [json.loads((tmp_path / f"{n}.json").read_text())["remote"]["model_cache"] for n in (1, 2)]
    assert cache[0]["uploaded"] + cache[0]["reused"] == 1 and cache[1] == {**cache[0], "uploaded": 0, "reused": 1}
    assert "1 model(s) cached and re-hashed there, 0 to upload" in second.stderr
    assert float(re.search(r"uploading ([0-9.]+) MB", second.stderr).group(1)) < 1.0  # the runtime and the job; the 4 MB model stayed
    plain = remote_bench(server, wide, "--no-device-cache", "-o", tmp_path / "3.json", check=0)
    assert "model_cache" not in json.loads((tmp_path / "3.json").read_text())["remote"]
    assert float(re.search(r"uploading ([0-9.]+) MB", plain.stderr).group(1)) >= 4.0
    assert server.leftovers() == []


def test_keep_remote(server, mlp):
    proc = remote_bench(server, mlp, "--keep-remote", "--json", check=0)
    workdir = json.loads(proc.stdout)["remote"]["workdir"]
    assert os.path.isdir(workdir) and os.path.isfile(os.path.join(workdir, "bundle", "results.json"))
    subprocess.run(["rm", "-rf", workdir], check=True)
    assert server.leftovers() == []


def test_unknown_host_key_is_refused(server, mlp, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cfg = server.client_config("stranger", known_hosts=empty)
    proc = cli(
        "bench",
        mlp.path,
        "--host",
        "stranger",
        "--ssh-config",
        cfg,
        "--profile",
        "rpi4",
        "--remote-python",
        sys.executable,
        "--shape",
        "batch=1",
        "--iterations",
        "5",
        check=3,
    )
    line = one_line_error(proc)
    assert "host key" in line and "ssh-keyscan" in line and "--accept-new-host-key" in line
    assert empty.read_text() == ""
    cli(
        "bench",
        mlp.path,
        "--host",
        "stranger",
        "--ssh-config",
        cfg,
        "--profile",
        "rpi4",
        "--remote-python",
        sys.executable,
        "--shape",
        "batch=1",
        "--iterations",
        "5",
        "--accept-new-host-key",
        check=0,
    )
    assert "127.0.0.1" in empty.read_text()  # trusted on first use, only with the flag
    assert server.leftovers() == []


def test_wrong_user_key(server, mlp):
    cfg = server.client_config("wrongkey", key=server.wrong_key)
    line = one_line_error(remote_bench(server, mlp, config=cfg, host="wrongkey", check=3))
    assert "authentication failed" in line


def test_unreachable_port(server, mlp):
    from sshd import free_port

    cfg = server.client_config("closed", port=free_port())
    t0 = time.time()
    line = one_line_error(remote_bench(server, mlp, config=cfg, host="closed", check=3))
    assert "unreachable" in line and "Connection refused" in line
    assert time.time() - t0 < 60  # retried with backoff, then gave up


def test_remote_without_onnxruntime(server, mlp, tmp_path):
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    proc = cli(
        "bench",
        mlp.path,
        "--host",
        "testpi",
        "--ssh-config",
        server.config,
        "--profile",
        "rpi4",
        "--remote-python",
        bare / "bin" / "python",
        "--shape",
        "batch=1",
        "--iterations",
        "5",
        check=3,
    )
    line = one_line_error(proc)
    assert "lacks numpy, onnxruntime" in line and "edgedeploy provision" in line
    assert server.leftovers() == []


def test_checksum_mismatch_after_upload(server, mlp, tmp_path):
    """A remote python that corrupts the uploaded model right before the sha256 check
    (disk or transfer corruption on the device): nothing may run, exit 2, no leftovers."""
    wrapper = tmp_path / "corrupting-python"
    wrapper.write_text(
        '#!/bin/sh\nfor a in "$@"; do case "$a" in */.staging) for m in "$a"/models/*/model.onnx; do printf x >> "$m"; done;; esac; done\n'
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    proc = cli(
        "bench",
        mlp.path,
        "--host",
        "testpi",
        "--ssh-config",
        server.config,
        "--profile",
        "rpi4",
        "--remote-python",
        wrapper,
        "--shape",
        "batch=1",
        "--iterations",
        "5",
        "--no-device-cache",  # the model travels with the run (a cached one would not be uploaded again)
        check=2,
    )
    line = one_line_error(proc)
    assert "checksum mismatch after upload" in line and "model.onnx" in line
    assert server.leftovers() == []


def test_connection_killed_mid_upload_is_retried(server, wide):
    stop = threading.Event()

    def killer():
        # wait until the upload is under way (its staging dir exists), then cut every live session
        while not stop.is_set():
            if any((server.remote_tmp / d / ".staging").exists() for d in os.listdir(server.remote_tmp)):
                time.sleep(0.5)
                for pid in server.session_pids():
                    os.kill(pid, 9)
                return
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    proc = remote_bench(server, wide, "--bwlimit", "1500", "--json", "--no-device-cache")  # the 4 MB model travels (not from the device's cache)
    stop.set()
    t.join()
    assert proc.returncode == 0, proc.stderr
    assert "connection lost during upload; retrying" in proc.stderr
    assert json.loads(proc.stdout)["results"][0]["samples"] == 30
    assert server.leftovers() == []


def test_remote_command_timeout(server, mlp):
    t0 = time.time()
    proc = cli(
        "bench",
        mlp.path,
        "--host",
        "testpi",
        "--ssh-config",
        server.config,
        "--profile",
        "rpi4",
        "--remote-python",
        sys.executable,
        "--shape",
        "batch=1",
        "--iterations",
        "100000000",
        "--duration",
        "600",
        "--timeout",
        "3",
        check=3,
    )
    assert "deadline" in one_line_error(proc)
    assert time.time() - t0 < 60
    time.sleep(0.5)
    assert server.leftovers() == []
    ps = subprocess.run(["pgrep", "-f", "edgedeploy-runtime.pyz run"], capture_output=True, text=True)
    assert ps.stdout.strip() == ""  # the remote harness is gone


def test_fleet_one_failure_does_not_stop_the_others(server, mlp, tmp_path):
    from sshd import free_port

    server.client_config("closedfleet", port=free_port())
    cfg = tmp_path / "fleet_config"
    cfg.write_text(server.config.read_text() + (server.root / "ssh_config_closedfleet").read_text())
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        f"hosts:\n  - host: testpi\n    profile: rpi4\n    remote_python: {sys.executable}\n"
        f"  - host: closedfleet\n    profile: rpi5\n    remote_python: {sys.executable}\n"
    )
    out = tmp_path / "fleet"
    proc = cli("bench", mlp.path, "--hosts", inv, "--ssh-config", cfg, "--shape", "batch=1", "--iterations", "10", "-o", out, check=3)
    assert "testpi" in proc.stdout and "FAILED" in proc.stdout
    assert json.loads((out / "testpi.json").read_text())["results"][0]["samples"] == 10
    assert not (out / "closedfleet.json").exists()
    assert "1 of 2 device(s) failed: closedfleet" in one_line_error(proc)


_NASTY = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    args=st.lists(
        _NASTY | st.sampled_from(["a b", "it's", '"q"', "$(touch /tmp/pwned)", "`id`", ";rm -rf x", "--", "-n", "*"]), min_size=1, max_size=5
    )
)
def test_remote_arguments_round_trip(server, args):
    target = ssh.Host.parse("testpi", config=str(server.config))
    proc = ssh.run(target, ["printf", "%s\\0", *args])
    got = proc.stdout.decode("utf-8", errors="surrogateescape").split("\0")[:-1]
    assert got == args
    assert not os.path.exists("/tmp/pwned")


def test_file_names_with_spaces_quotes_and_substitutions(server, tmp_path):
    """An artifact and a remote venv path full of shell metacharacters bench fine."""
    d = tmp_path / "we ird $(touch pwned) 'q' \"dq\""
    art = export(None, d / "my model;`id`", factory="factories:tiny_mlp", input=("x:float32:batch,64",))
    proc = cli(
        "bench",
        art.path,
        "--host",
        "testpi",
        "--ssh-config",
        server.config,
        "--profile",
        "rpi4",
        "--remote-python",
        sys.executable,
        "--shape",
        "batch=1",
        "--iterations",
        "5",
        "--json",
        check=0,
    )
    assert json.loads(proc.stdout)["results"][0]["samples"] == 5
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
    assert server.leftovers() == []


def test_provision_into_a_fresh_venv_then_bench_with_it(server, mlp, tmp_path):
    venv_dir = tmp_path / "device venv"  # a space in the path, on purpose
    first = cli(
        "provision",
        "--host",
        "testpi",
        "--ssh-config",
        server.config,
        "--remote-venv",
        venv_dir,
        "--remote-python",
        sys.executable,
        "--json",
        check=0,
    )
    res = json.loads(first.stdout)["testpi"]["ok"]
    assert any(w.startswith("onnxruntime-") for w in res["installed"]) and any(w.startswith("edgedeploy_runtime-") for w in res["installed"])
    py = venv_dir / "bin" / "python"
    mods = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print([m for m in ('torch', 'transformers', 'onnx', 'click') if u.find_spec(m)])"],
        capture_output=True,
        text=True,
    )
    assert mods.stdout.strip() == "[]"  # only the runtime and its two dependencies went in
    again = cli("provision", "--host", "testpi", "--ssh-config", server.config, "--remote-venv", venv_dir, "--remote-python", sys.executable, check=0)
    assert "already provisioned, nothing installed" in again.stdout
    proc = cli(
        "bench",
        mlp.path,
        "--host",
        "testpi",
        "--ssh-config",
        server.config,
        "--profile",
        "rpi4",
        "--remote-venv",
        venv_dir,
        "--shape",
        "batch=1",
        "--iterations",
        "10",
        "--json",
        check=0,
    )
    doc = json.loads(proc.stdout)
    assert doc["remote"]["check"]["executable"].startswith(str(venv_dir))
    assert server.leftovers() == []


def test_release_recipe_with_an_ssh_target(server, tiny_classifier_dir, tmp_path):
    """`edgedeploy run` on a local and an SSH target, one report for both. ``int8`` has
    ``profile: auto``: the Pi gets an artifact quantized with the rpi4 profile's settings and
    this host one with its own, each benchmarked on its own target only."""
    from conftest import SST2_DEV

    from edgedeploy.core.artifact import Artifact
    from edgedeploy.device.doctor import resolve_profile

    here = resolve_profile("auto")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"source: {tiny_classifier_dir}\ndata:\n  eval: {SST2_DEV}\n  max_rows: 32\n"
        "variants:\n  fp32: {method: float, gate: false}\n  int8: {method: dynamic, profile: auto}\n"
        "targets:\n  - {name: here, iterations: 64, max_cv: 10.0}\n"
        f"  - {{name: pi, host: testpi, ssh_config: {server.config}, profile: rpi4, remote_python: {sys.executable}, iterations: 64, max_cv: 10.0}}\n"
        "budgets:\n  max_size_mb: 50\n  max_p90_ms: 1000\n"
    )
    proc = cli("run", recipe, "--run-dir", tmp_path / "run", "--gate", check=0)
    assert "[done]   bench:pi" in proc.stdout and "int8.rpi4 on pi: max_p90_ms" in proc.stdout and "int8.rpi4 on here" not in proc.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    pi, local = (next(t for t in report["targets"] if t["name"] == n) for n in ("pi", "here"))
    assert pi["profile"] == "rpi4" and set(pi["results"]) == {"fp32", "int8.rpi4"} and set(local["results"]) == {"fp32", f"int8.{here}"}
    assert pi["results"]["int8.rpi4"]["artifact"].endswith("artifacts/int8.rpi4")
    assert pi["results"]["int8.rpi4"]["provenance"].startswith("measured on testpi") and pi["results"]["int8.rpi4"]["samples"] >= 64
    on_pi = Artifact.load(tmp_path / "run" / "artifacts" / "int8.rpi4").manifest.quantization
    assert on_pi.profile == "rpi4" and on_pi.settings["weight_type"] == "uint8" and on_pi.settings["reduce_range"] is False
    assert on_pi.chosen_by["weight_type"] == "profile rpi4"
    assert Artifact.load(tmp_path / "run" / "artifacts" / f"int8.{here}").manifest.quantization.profile == here
    assert server.leftovers() == []


# ---- a hostile device: it runs the real harness, then rewrites what it reports ------------------

HOSTILE = r"""#!{python}
import json, os, subprocess, sys
rc = subprocess.call([{python!r}, *sys.argv[1:]])
if rc == 0 and sys.argv[2:3] == ["run"] and "results.json" in sys.argv:
    doc = json.load(open("results.json"))
    mode = {mode!r}
    if mode == "escape":
        doc["outputs"] = ["../../../../escaped.npz", "/tmp/escaped-abs.npz"]
        body = json.dumps(doc)
    elif mode == "rename":
        doc["results"][0]["name"] = "../../evil"
        body = json.dumps(doc)
    elif mode == "nan":
        doc["results"][0]["latency_ms"]["p50"] = float("nan")
        body = json.dumps(doc)
    elif mode == "negative":
        doc["results"][0]["latency_ms"]["p50"] = -1.0
        body = json.dumps(doc)
    elif mode == "types":
        doc["results"] = "many"
        body = json.dumps(doc)
    else:
        body = "\x00\xff not json"
    with open("results.json", "w", encoding="latin-1") as fh:
        fh.write(body)
sys.exit(rc)
"""


def hostile_python(tmp_path, mode):
    path = tmp_path / f"hostile-{mode}"
    path.write_text(HOSTILE.format(python=sys.executable, mode=mode))
    path.chmod(0o755)
    return path


def test_device_supplied_output_names_are_never_paths(server, mlp, tmp_path):
    save = tmp_path / "a" / "b" / "out"
    proc = remote_bench(server, mlp, "--save-outputs", save, python=hostile_python(tmp_path, "escape"), check=0)
    assert "p50 ms" in proc.stdout
    assert sorted(p.name for p in save.iterdir()) == ["mlp.npz"]  # the host's name for the model it sent
    assert not (save / "../../../../escaped.npz").resolve().exists() and not os.path.exists("/tmp/escaped-abs.npz")
    assert server.leftovers() == []


@pytest.mark.parametrize(
    "mode, needle",
    [("rename", "do not match"), ("nan", "NaN is not a number"), ("negative", "latency_ms.p50"), ("types", "results"), ("garbage", "not valid JSON")],
)
def test_hostile_results_json_is_bad_input(server, mlp, tmp_path, mode, needle):
    out = tmp_path / "r.json"
    line = one_line_error(remote_bench(server, mlp, "-o", out, python=hostile_python(tmp_path, mode), check=2))
    assert "testpi: results.json" in line and needle in line, line
    assert not out.exists() and not (tmp_path.parent / "evil").exists()
    assert server.leftovers() == []


def test_models_whose_names_clean_up_alike_are_measured_apart(server, mlp, wide, tmp_path):
    """x/tiny, y/tiny and z/tiny_ are named tiny, tiny' and tiny_: name cleanup alone once gave the
    last two one bundle directory, so the wrong model was measured under a row."""
    import shutil

    paths = []
    for parent, name, art in (("x", "tiny", mlp), ("y", "tiny", mlp), ("z", "tiny_", wide)):
        shutil.copytree(art.path, tmp_path / parent / name)
        paths.append(tmp_path / parent / name)
    out = tmp_path / "r.json"
    remote_bench(server, None, "-o", out, paths=paths, check=0)
    rows = json.loads(out.read_text())["results"]
    sizes = [sum(f.stat().st_size for f in p.iterdir() if f.name.startswith("model.onnx")) for p in paths]  # model + external data
    assert [r["model_size_bytes"] for r in rows] == sizes and sizes[2] != sizes[1]
    assert [r["artifact"] for r in rows] == [str(p) for p in paths]


# ---- Ansible inventories ----------------------------------------------------------------------


@pytest.fixture
def ansible_config(server, tmp_path):
    """Connection details come from the inventory (ansible_host/port/user/key): the ssh config
    only says which host keys to trust, for 127.0.0.1 and localhost on the test port."""
    known = tmp_path / "known_hosts"
    key = (server.root / "host_key.pub").read_text()
    known.write_text(f"[127.0.0.1]:{server.port} {key}[localhost]:{server.port} {key}")
    cfg = tmp_path / "ansible_ssh_config"
    cfg.write_text(f"Host *\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n")
    return cfg


def test_ansible_ini_inventory_with_limit(server, mlp, tmp_path, ansible_config):
    from sshd import free_port

    inv = tmp_path / "inventory.ini"
    inv.write_text(
        "[pis]\n"
        f"pi-a ansible_host=127.0.0.1\n"
        f"pi-b ansible_host=localhost\n"
        "[pis:vars]\n"
        f"ansible_port={server.port}\nansible_user={server.user}\nansible_ssh_private_key_file={server.user_key}\nprofile=rpi4\n"
        "[far]\n"
        f"gone ansible_host=127.0.0.1 ansible_port={free_port()} profile=rpi5\n"
        "[fleet:children]\npis\nfar\n"
        "[all:vars]\n"
        f"ansible_python_interpreter={sys.executable}\n"
    )
    out = tmp_path / "fleet"
    base = ("bench", mlp.path, "--hosts", inv, "--ssh-config", ansible_config, "--shape", "batch=1", "--iterations", "10", "--warmup", "1")
    proc = cli(*base, "--limit-hosts", "pis", "-o", out, check=0)
    assert "FAILED" not in proc.stdout
    docs = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    assert len(docs) == 2 and all(d["results"][0]["samples"] == 10 and d["profile"] == "rpi4" for d in docs.values())
    assert "unreachable" in one_line_error(cli(*base, "--limit-hosts", "far", check=3))  # the group the first run left out
    assert "no host or group" in one_line_error(cli(*base, "--limit-hosts", "nowhere", check=2))
    assert server.leftovers() == []


def test_ansible_yaml_inventory(server, mlp, tmp_path, ansible_config):
    inv = tmp_path / "inventory.yml"
    inv.write_text(
        "all:\n"
        f"  vars: {{ansible_python_interpreter: {sys.executable}}}\n"
        "  children:\n"
        "    pis:\n"
        f"      vars: {{profile: rpi4, ansible_user: {server.user}, ansible_ssh_private_key_file: {server.user_key}}}\n"
        "      hosts:\n"
        f"        pi-a: {{ansible_host: 127.0.0.1, ansible_port: {server.port}}}\n"
    )
    out = tmp_path / "r.json"
    cli(
        "bench",
        mlp.path,
        "--hosts",
        inv,
        "--ssh-config",
        ansible_config,
        "--shape",
        "batch=1",
        "--iterations",
        "10",
        "--limit-hosts",
        "pi-*",
        "-o",
        out,
        check=0,
    )
    doc = json.loads(out.read_text())
    assert doc["remote"]["host"] == f"{server.user}@127.0.0.1:{server.port}" and doc["results"][0]["samples"] == 10


def test_provision_with_an_onnxruntime_wheel_of_ones_own(server, tmp_path):
    """--ort-wheel is for NVIDIA's onnxruntime-gpu on a Jetson, which PyPI lacks; no Jetson exists
    here, so PyPI's CPU wheel for this host stands in for it (the code path is the same)."""
    from importlib.metadata import version

    wheels = tmp_path / "wheels"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(wheels),
            f"onnxruntime=={version('onnxruntime')}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = wheels.glob("onnxruntime-*.whl")
    venv_dir = tmp_path / "jetson-venv"
    base = ("provision", "--host", "testpi", "--ssh-config", server.config, "--remote-venv", venv_dir, "--remote-python", sys.executable)
    res = json.loads(cli(*base, "--ort-wheel", wheel, "--json", check=0).stdout)["testpi"]["ok"]
    assert wheel.name in res["installed"]
    check = subprocess.run([str(venv_dir / "bin" / "edgedeploy-runtime"), "check"], capture_output=True, text=True)
    assert check.returncode == 0 and json.loads(check.stdout)["onnxruntime"] == version("onnxruntime")
    fake = tmp_path / "onnxruntime_gpu-1.18.0-cp310-cp310-linux_aarch64.whl"
    fake.write_bytes(b"PK")
    assert "built for linux_aarch64" in one_line_error(cli(*base, "--ort-wheel", fake, check=2))
    assert server.leftovers() == []


def test_generation_over_ssh(server, decoder_models, tmp_path):
    """bench --generate runs the same torch-free KV-cache loop on the device."""
    art = Artifact.load(decoder_models["qwen2"][1])
    out = tmp_path / "gen.json"
    remote_bench(server, art, "--generate", "--prompt-tokens", "12", "--new-tokens", "6", "-o", out, check=0)
    doc = json.loads(out.read_text())
    g = doc["results"][0]["generation"]
    assert doc["remote"]["host"] and g["prompt_tokens"] == 12 and g["new_tokens"] == 6 and g["runs"] == 30
    assert g["decode_tokens_per_s"] > 0 and g["ttft_ms"]["p50"] > 0 and g["inter_token_ms"]["p90"] is not None
    too_long = remote_bench(server, art, "--generate", "--prompt-tokens", "60", "--new-tokens", "6", check=2)
    assert "exceed the model's 64 positions" in one_line_error(too_long)


def test_seq2seq_generation_over_ssh(server, seq2seq_models, tmp_path):
    """An encoder-decoder's three graphs travel to the device and generate there."""
    art = Artifact.load(seq2seq_models["t5"][1])
    out = tmp_path / "gen.json"
    remote_bench(server, art, "--generate", "--prompt-tokens", "10", "--new-tokens", "5", "-o", out, check=0)
    doc = json.loads(out.read_text())
    res = doc["results"][0]
    g = res["generation"]
    assert doc["remote"]["host"] and g["prompt_tokens"] == 10 and g["new_tokens"] == 5 and g["decode_tokens_per_s"] > 0
    assert res["model_size_bytes"] == sum((art.path / n).stat().st_size for n in art.graph_files.values())
    assert server.leftovers() == []


@pytest.mark.parametrize(
    "python,glibc,numpy_major,ort_at_most",
    [("3.8", "2.31", 1, (1, 19)), ("3.10", "2.35", 2, None)],
    ids=["jetpack5-py3.8", "jetpack6-py3.10"],
)
def test_provision_resolves_wheels_for_the_device_not_this_host(python, glibc, numpy_major, ort_at_most):
    """JetPack 5 ships Python 3.8 and JetPack 6 3.10 (both aarch64): the versions come from the
    registry's wheels for that Python, architecture and glibc, not from this host's (3.11, x86_64).
    Resolved on the package index, so this reads the registry."""
    from importlib.metadata import version

    from edgedeploy.device.provision import resolve

    got = resolve({"python_tag": python, "arch": "aarch64", "libc_version": glibc}, ["numpy", "onnxruntime"])
    numpy_v, ort_v = (tuple(int(x) for x in got[d].split(".")[:2]) for d in ("numpy", "onnxruntime"))
    assert numpy_v[0] == numpy_major and {"protobuf", "flatbuffers"} <= set(got)
    if ort_at_most:  # onnxruntime 1.19 was the last release with Python 3.8 wheels
        assert ort_v <= ort_at_most and got["onnxruntime"] != version("onnxruntime")
    assert got["numpy"] != version("numpy")  # this host's numpy has no wheel for that Python
