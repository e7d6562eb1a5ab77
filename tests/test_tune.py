"""`edgedeploy tune` on a small text classifier with real SST-2 text: candidates built on the
host, measured interleaved with real ONNX Runtime sessions here and on the loopback sshd."""

import json
import os
import sys

import pytest
from conftest import SST2_DEV, cli, one_line_error
from sshd import Server, ensure_sshd

from edgedeploy.core.artifact import Artifact

TRAIN = SST2_DEV.with_name("train.tsv")
FAST = ("--eval-samples", "16", "--calib-samples", "16", "--iterations", "15", "--warmup", "2", "--shape", "batch=1,sequence=32")


@pytest.fixture(scope="module")
def clf(tmp_path_factory, tiny_classifier_dir):
    out = tmp_path_factory.mktemp("tune") / "clf"
    cli("export", tiny_classifier_dir, "-o", out, check=0)
    return out


def test_tune_publishes_the_fastest_candidate_that_meets_the_budget(clf, tmp_path):
    out = tmp_path / "best"
    proc = cli("tune", clf, "-o", out, "--data", SST2_DEV, "--calib-data", TRAIN, "--min-mean-cosine", "0.95", *FAST, check=0)
    assert "winner:" in proc.stdout
    art = Artifact.load(out)  # a normal, verified artifact
    assert art.verify() == [] and art.manifest.lineage.step.startswith("tune:")
    assert art.manifest.lineage.parent == Artifact.load(clf).digest  # the artifact given, even when the winner came from its fused export
    doc = json.loads((out / "tune.json").read_text())
    assert doc == json.loads(json.dumps(doc)) and doc["target"] == "local"
    labels = {c["label"] for c in doc["candidates"]}
    assert {"dynamic", "dynamic-pc-sq0.7", "static-qdq-sq0.7"} <= labels and any(c["parent"] == "fused" for c in doc["candidates"])
    assert [c["error"] for c in doc["candidates"] if c["status"] != "built"] == []  # every candidate got what it needs
    feasible = [c for c in doc["candidates"] if c["meets_budget"]]
    assert feasible and all(c["mean_cosine"] >= 0.95 and c["measured"]["latency_ms"]["p50"] > 0 for c in feasible)
    assert all("measured" not in c for c in doc["candidates"] if not c["meets_budget"])
    win = doc["winner"]
    fastest = min(feasible, key=lambda c: c["measured"]["latency_ms"]["p50"])
    assert win["id"] == fastest["id"] and win["label"] in art.manifest.tune.winner["label"]
    assert doc["float_parent"]["latency_ms"]["p50"] > 0 and len(doc["session_search"]) >= 3
    assert any("disabled_optimizers=SkipLayerNormFusion" in name for name in doc["session_search"])
    run = art.manifest.run
    assert (run.for_job(None) if run else None) == (win["session"] or None)  # what bench runs is what was measured
    assert (out / "tune.md").read_text().startswith("# edgedeploy tune") and "<svg" in (out / "tune.html").read_text()
    assert not (tmp_path / "best.tune-state").exists()  # the state goes once the winner is published
    # candidates are compared on the first --eval-samples rows of --data; the winner is reported on the next ones
    n = int(FAST[FAST.index("--eval-samples") + 1])
    assert doc["split"]["selection_rows"] == [0, n] and doc["split"]["held_out_rows"] == [n, 2 * n]
    held = win["held_out"]
    assert held["samples"] == n and held["mean_cosine"] >= 0.95
    f = art.manifest.fidelity
    assert f.inputs["rows"] == [n, 2 * n] and f.mean_cosine == held["mean_cosine"]
    assert art.manifest.tune.selection_fidelity.mean_cosine == fastest["mean_cosine"]
    assert f"held-out rows {n}-{2 * n - 1}" in (out / "tune.md").read_text()
    # the figures of record: the winner (in its session), quantize_dynamic's defaults and float, one round after the choice
    final = doc["final_round"]
    assert win["measured"] == final["winner"] and win["selection_measured"] != final["winner"]
    assert final["baseline"]["settings"] == {"per_channel": False, "reduce_range": False, "weight_type": "int8"}
    # like for like: against the baseline in the winner's session when the winner has one of its own
    peer = final["baseline"]["measured_same_session"] if win["session"] else final["baseline"]["measured"]
    assert final["winner_vs_baseline_p50"] == final["winner"]["latency_ms"]["p50"] / peer["latency_ms"]["p50"]
    assert ("measured_same_session" in final["baseline"]) == bool(win["session"])
    assert final["float_parent"]["samples"] == final["winner"]["samples"] == final["baseline"]["measured"]["samples"]
    assert art.manifest.tune.final_round == final and "Figures of record" in (out / "tune.md").read_text()


def test_a_winner_that_misses_the_budget_on_the_held_out_rows_fails(tmp_path):
    """The budget is checked again on the held-out rows: met on the selection rows only, exit 1
    naming both row ranges (nothing is published: the check comes before _publish)."""
    from edgedeploy.core.errors import ValidationFailed
    from edgedeploy.tune import held_out

    def misses(rec):
        return [f"worst cosine {rec['worst_cosine']:.4f} < 0.99"] if rec["worst_cosine"] < 0.99 else []

    leader = {"label": "dynamic-pc", "mean_cosine": 0.999, "worst_cosine": 0.995}
    split = {"file": "dev.tsv", "selection_rows": [0, 16], "held_out_rows": [16, 32]}
    with pytest.raises(ValidationFailed, match=r"selection rows 0-15 but not on the held-out rows 16-31 of dev.tsv: worst cosine 0\.9700"):
        held_out.check(leader, {"mean_cosine": 0.998, "worst_cosine": 0.97}, misses, split)
    held_out.check(leader, {"mean_cosine": 0.998, "worst_cosine": 0.992}, misses, split)


def test_int4_search_for_the_smallest_variant(clf, tmp_path):
    """--methods int4 --objective size: block size, symmetry and accuracy_level are searched; the winner is the smallest within budget."""
    out = tmp_path / "small"
    cli("tune", clf, "-o", out, "--methods", "int4", "--objective", "size", "--data", SST2_DEV, "--min-mean-cosine", "0.5", *FAST, check=0)
    doc = json.loads((out / "tune.json").read_text())
    labels = {c["label"] for c in doc["candidates"]}
    assert {"int4", "int4-blocksize64", "int4-blocksize128", "int4-sym", "int4-accuracylevel0"} <= labels
    feasible = [c for c in doc["candidates"] if c["meets_budget"]]
    assert doc["winner"]["id"] == min(feasible, key=lambda c: c["size_bytes"])["id"] and "session_search" not in doc
    assert Artifact.load(out).manifest.quantization.method == "int4"


UNMET = ("--methods", "dynamic", "--data", SST2_DEV, "--min-worst-cosine", "1.0", "--no-session-search", *FAST)


@pytest.fixture(scope="module")
def unmet_search(clf, tmp_path_factory):
    """The state a search leaves when no candidate meets its budget (kept for --resume)."""
    out = tmp_path_factory.mktemp("unmet") / "none"
    proc = cli("tune", clf, "-o", out, *UNMET, check=1)
    line = one_line_error(proc)
    assert "no candidate meets the budget" in line and "closest: dynamic" in line and "worst cosine" in line and "< 1.0" in line
    assert not out.exists()
    return out.with_name("none.tune-state")


def test_a_budget_no_candidate_meets_names_the_closest(unmet_search):
    doc = json.loads((unmet_search / "tune.json").read_text())
    assert doc["winner"] is None and doc["candidates"] and all(not c["meets_budget"] for c in doc["candidates"])
    assert all(c["misses"] and "worst cosine" in c["misses"][0] for c in doc["candidates"] if c["status"] == "built")


@pytest.mark.parametrize(
    "args, expect",
    [
        (("--objective", "size", "--max-size-mb", "5"), "contradicts"),
        (("--methods", "dynamic,fp32"), "unknown method 'fp32'"),
        (("--objective", "p90", "--iterations", "20"), "needs --iterations >= 64"),
        (("--max-accuracy-drop", "0.01"), "--max-accuracy-drop needs labeled --data"),
        (("--baseline", "torch", "--data", str(SST2_DEV)), "tune compares its candidates"),
        (("--resume", "--data", str(SST2_DEV)), "no interrupted search"),
        ((), "give --data"),
    ],
)
def test_contradictory_or_missing_flags_exit_2(clf, tmp_path, args, expect):
    assert expect in one_line_error(cli("tune", clf, "-o", tmp_path / "o", *args, check=2))
    assert not (tmp_path / "o").exists()


def test_a_recipe_variant_can_be_tuned_on_a_recipe_target(tiny_classifier_dir, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: tuned\nsource: {tiny_classifier_dir}\ndata:\n  eval: {SST2_DEV}\n  max_rows: 32\n"
        "variants:\n  fp32: {method: float, gate: false}\n"
        "  best: {method: tune, methods: [dynamic], min_mean_cosine: 0.9, eval_samples: 16, tune_on: here}\n"
        "targets:\n  - {name: here, shape: 'batch=1,sequence=32', iterations: 20, max_cv: 10.0}\n"
    )
    cli("run", recipe, "--run-dir", tmp_path / "run", "--gate", check=0)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stages"]["quantize:best"] == "ok" and summary["stages"]["bench:here"] == "ok"
    record = json.loads((tmp_path / "run" / "stages" / "quantize__best.json").read_text())
    assert record["result"]["quantization"]["method"].startswith("tune:dynamic")
    assert record["result"]["tune"]["target"] == "local" and record["result"]["tune"]["candidates"] >= 3
    art = Artifact.load(tmp_path / "run" / "artifacts" / "best")
    assert art.manifest.tune.winner["label"] == record["result"]["tune"]["winner"]


@pytest.mark.skipif(ensure_sshd() is not None and not (os.environ.get("CI") or os.environ.get("EDGEDEPLOY_REQUIRE_SSHD")), reason=ensure_sshd() or "")
def test_tune_over_ssh_survives_a_lost_device_and_resumes(clf, tmp_path):
    """The device is unreachable when measuring starts: exit 3, the built candidates stay;
    --resume against the device (reachable again) measures there without rebuilding them."""
    server = Server(tmp_path / "sshd")
    try:
        dead = tmp_path / "dead_config"
        dead.write_text(server.config.read_text().replace(f"Port {server.port}", "Port 9"))
        args = (
            "--methods",
            "dynamic",
            "--data",
            SST2_DEV,
            "--min-mean-cosine",
            "0.9",
            "--no-session-search",
            "--host",
            "testpi",
            "--profile",
            "rpi4",
        )
        args += ("--remote-python", sys.executable, "--connect-timeout", "5", *FAST)
        out = tmp_path / "best"
        lost = cli("tune", clf, "-o", out, *args, "--ssh-config", dead, check=3)
        assert "testpi" in one_line_error(lost) and not out.exists()
        state = json.loads((tmp_path / "best.tune-state" / "state.json").read_text())
        built = {k for k, c in state["candidates"].items() if c["status"] == "built"}
        assert built and state["rounds"] == {}
        again = cli("tune", clf, "-o", out, *args, "--ssh-config", server.config, "--resume", check=0)
        assert again.stderr.count("(from the interrupted search)") == len(state["order"])  # read back, not rebuilt
        doc = json.loads((out / "tune.json").read_text())
        assert doc["target"] == "testpi" and doc["profile"] == "rpi4"
        by_id = {c["id"]: c for c in doc["candidates"]}
        assert all(by_id[k]["build_s"] == state["candidates"][k]["build_s"] for k in built)  # the same builds, not new ones
        assert len(by_id) > len(built)  # and the search went on past where the device was lost
        assert all(c["measured"]["session"]["providers_used"] == ["CPUExecutionProvider"] for c in doc["candidates"] if c["meets_budget"])
        # each model went up once: the final round found the bases' models in the device's cache
        first, final = doc["rounds"]["bases"]["model_cache"], doc["rounds"]["candidates"]["model_cache"]
        assert first["uploaded"] >= 2 and final["reused"] >= first["uploaded"]
        record = doc["rounds"]["final"]["model_cache"]  # the winner again, with quantize_dynamic's defaults and float
        assert record["reused"] >= 2 and record["uploaded"] <= 1
        cached = sorted(p.name for p in (server.device_cache / "edgedeploy" / "models").iterdir())
        assert len(cached) == first["uploaded"] + final["uploaded"] + record["uploaded"]
        gone = cli("cleanup", "--host", "testpi", "--ssh-config", server.config, "--remote-python", sys.executable, check=0)
        assert f"testpi: removed {len(cached)} cached model(s)" in gone.stdout
        assert not (server.device_cache / "edgedeploy" / "models").exists()
    finally:
        server.stop()


@pytest.mark.skipif(ensure_sshd() is not None and not (os.environ.get("CI") or os.environ.get("EDGEDEPLOY_REQUIRE_SSHD")), reason=ensure_sshd() or "")
def test_the_device_model_cache_trusts_nothing_it_holds(clf, tmp_path):
    """A cached model whose file changed on the device (or became a link) is not used: it is removed and uploaded again."""
    from edgedeploy.device import model_cache, ssh

    server = Server(tmp_path / "sshd")
    try:
        target = ssh.Host.parse("testpi", config=str(server.config))
        art = Artifact.load(clf)
        files = model_cache.model_files(art)
        k = model_cache.key(files)
        d = server.device_cache / "edgedeploy" / "models" / k
        d.mkdir(parents=True)
        (d / "model.onnx").write_bytes((clf / "model.onnx").read_bytes()[:-1] + b"x")  # one byte changed
        root, have = model_cache.check(target, sys.executable, {k: files})
        assert root == str(server.device_cache / "edgedeploy" / "models") and have == set() and not d.exists()
        d.mkdir()
        (d / "model.onnx").symlink_to(clf / "model.onnx")  # the right bytes, through a link
        assert model_cache.check(target, sys.executable, {k: files})[1] == set() and not d.exists()
        d.mkdir()
        (d / "model.onnx").write_bytes((clf / "model.onnx").read_bytes())
        assert model_cache.check(target, sys.executable, {k: files, "f" * 64: files})[1] == {k}
    finally:
        server.stop()


def test_ctrl_c_mid_search_then_resume(clf, tmp_path):
    """SIGINT while candidates are being built: exit 130, nothing published, no half-built
    candidate; --resume reads back every candidate finished before the signal."""
    import signal
    import subprocess
    import time

    out = tmp_path / "best"
    args = ["tune", str(clf), "-o", str(out), "--methods", "dynamic", "--data", str(SST2_DEV), "--calib-data", str(TRAIN), "--min-mean-cosine", "0.9"]
    args += [*FAST, "--no-session-search"]
    proc = subprocess.Popen([sys.executable, "-m", "edgedeploy", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state_file = tmp_path / "best.tune-state" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if sum(c["status"] == "built" for c in json.loads(state_file.read_text())["candidates"].values()) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and not out.exists()
    state = json.loads(state_file.read_text())
    built = [k for k, c in state["candidates"].items() if c["status"] == "built"]
    assert len(built) >= 2
    candidates = tmp_path / "best.tune-state" / "candidates"
    assert sorted(p.name for p in candidates.iterdir()) == sorted(built)  # no half-built one, no staging left
    again = cli(*args, "--resume", check=0)
    assert again.stderr.count("(from the interrupted search)") >= len(built)
    by_id = {c["id"]: c for c in json.loads((out / "tune.json").read_text())["candidates"]}
    assert all(by_id[k]["build_s"] == state["candidates"][k]["build_s"] for k in built)


@pytest.mark.parametrize(
    "tamper, expect",
    [
        (lambda d: d["candidates"].update({"../../x": {"id": "../../x", "status": "built"}}), "not a candidate id"),
        (lambda d: d["order"].append("0123456789ab"), "order names a candidate"),
        (lambda d: next(iter(d["candidates"].values())).update(mean_cosine="1.0"), "mean_cosine is not a number"),
        (lambda d: d.update(parent="f" * 64), "tuned another parent"),
        (lambda d: d["pinned"].update(eval_samples=999), "eval_samples differ"),
    ],
)
def test_a_tampered_search_state_is_refused_on_resume(clf, unmet_search, tmp_path, tamper, expect):
    """The state file names directories and feeds the winner's choice: --resume trusts none of it."""
    import shutil

    out = tmp_path / "none"
    shutil.copytree(unmet_search, tmp_path / "none.tune-state")
    base = ("tune", clf, "-o", out, *UNMET)
    path = tmp_path / "none.tune-state" / "state.json"
    doc = json.loads(path.read_text())
    tamper(doc)
    path.write_text(json.dumps(doc))
    assert expect in one_line_error(cli(*base, "--resume", check=2))
    assert not out.exists()


@pytest.mark.skipif(ensure_sshd() is not None and not (os.environ.get("CI") or os.environ.get("EDGEDEPLOY_REQUIRE_SSHD")), reason=ensure_sshd() or "")
def test_a_device_that_answers_the_cache_check_with_garbage_is_an_environment_failure(clf, tmp_path):
    """What the device prints is untrusted: a malformed answer is exit 3 with the host named, never a traceback or a model path taken from it."""
    from edgedeploy.core.errors import EnvironmentFailure
    from edgedeploy.device import model_cache, ssh

    server = Server(tmp_path / "sshd")
    try:
        target = ssh.Host.parse("testpi", config=str(server.config))
        files = model_cache.model_files(Artifact.load(clf))
        for i, answer in enumerate(["not json", '{"root": 5}', '{"root": "/x", "have": "all"}', "[1, 2]"]):
            liar = tmp_path / f"python{i}"
            liar.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{answer}'\n")
            liar.chmod(0o755)
            with pytest.raises(EnvironmentFailure, match="testpi: the model cache check answered garbage"):
                model_cache.check(target, str(liar), {model_cache.key(files): files})
    finally:
        server.stop()
