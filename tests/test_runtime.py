"""The device-side harness: inputs, scenarios, results JSON, isolation from torch."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from edgedeploy.runtimes import inputs, job, measure, session

SIG = [
    {"name": "input_ids", "dtype": "int64", "shape": ["batch_size", "sequence_length"]},
    {"name": "attention_mask", "dtype": "int64", "shape": ["batch_size", "sequence_length"]},
    {"name": "token_type_ids", "dtype": "int64", "shape": ["batch_size", "sequence_length"]},
    {"name": "pixel_values", "dtype": "float32", "shape": ["batch_size", 3, 8, 8]},
]


def test_short_names_bind_exporter_dims():
    feeds = inputs.generate(SIG, inputs.parse_shape("batch=2,sequence=5"), seed=0, vocab_size=50)
    assert feeds["input_ids"].shape == (2, 5) and feeds["input_ids"].min() >= 0 and feeds["input_ids"].max() < 50
    assert (feeds["attention_mask"] == 1).all() and (feeds["token_type_ids"] == 0).all()
    assert feeds["pixel_values"].shape == (2, 3, 8, 8) and np.abs(feeds["pixel_values"]).max() <= 3
    again = inputs.generate(SIG, {"batch": 2, "sequence": 5}, seed=0, vocab_size=50)
    assert all(np.array_equal(feeds[k], again[k]) for k in feeds)  # fixed seed


def test_unknown_and_unbound_dims_list_the_models_dims():
    with pytest.raises(inputs.ShapeError, match="batch_size, sequence_length"):
        inputs.generate(SIG, {"batch": 1, "height": 3})
    with pytest.raises(inputs.ShapeError, match=r"unbound dim.*sequence_length"):
        inputs.generate(SIG, {"batch": 1})
    with pytest.raises(inputs.ShapeError, match="name=value"):
        inputs.parse_shape("batch:1")


def test_npz_inputs(tmp_path):
    np.savez(
        tmp_path / "in.npz",
        input_ids=np.ones((1, 4)),
        attention_mask=np.ones((1, 4)),
        token_type_ids=np.zeros((1, 4)),
        pixel_values=np.zeros((1, 3, 8, 8)),
    )
    feeds = inputs.load_npz(str(tmp_path / "in.npz"), SIG)
    assert feeds["input_ids"].dtype == np.int64 and feeds["pixel_values"].dtype == np.float32
    np.savez(tmp_path / "bad.npz", x=np.ones(3))
    with pytest.raises(inputs.ShapeError, match="lacks input"):
        inputs.load_npz(str(tmp_path / "bad.npz"), SIG)


def _job(model, **kw):
    return {
        "models": [{"name": "tiny", "path": str(model)}],
        "shape": {"batch": 4},
        "iterations": 80,
        "duration_s": 30,
        "warmup": 3,
        "warmup_s": 1.0,
        "profile": {"name": "test", "run": {"intra_op_threads": 1}},
        **kw,
    }


def test_single_stream_results_document(tiny_onnx):
    doc = job.run_job(_job(tiny_onnx))
    r = doc["results"][0]
    for key in ("p50", "p90", "p99", "mean", "std", "min", "max", "cv"):
        assert key in r["latency_ms"]
    assert r["latency_ms"]["p90"] is not None and r["latency_ms"]["p99"] is None  # 80 samples: p90 yes, p99 no
    assert r["samples"] == 80 and len(r["latencies_ms"]) == 80
    assert r["throughput_per_s"] > 0 and r["init_ms"] > 0 and r["first_inference_ms"] > 0
    assert r["warmup"]["iterations"] == 3 and r["warmup"]["total_ms"] > 0
    assert r["peak_rss_mb"] > 10 and r["model_size_bytes"] == os.path.getsize(tiny_onnx)
    assert isinstance(r["stable"], bool) and r["stable"] == (r["latency_ms"]["cv"] <= 0.10)
    assert r["inputs"] == {"x": [4, 16]} and r["batch"] == 4
    env = doc["environment"]
    for key in ("cpu_model", "isa_flags", "cores", "os", "python", "onnxruntime", "providers_used", "threads", "profile"):
        assert key in env
    assert env["providers_used"] == ["CPUExecutionProvider"] and env["threads"]["intra_op"] == 1


def test_duration_bounds_the_run(tiny_onnx):
    t0 = time.perf_counter()
    doc = job.run_job(_job(tiny_onnx, iterations=10**9, duration_s=0.5))
    assert time.perf_counter() - t0 < 10
    assert 1 <= doc["results"][0]["samples"] < 10**9


def test_offline_concurrency(tiny_onnx):
    doc = job.run_job(_job(tiny_onnx, scenario="offline", concurrency=2, iterations=100))
    r = doc["results"][0]
    assert r["concurrency"] == 2 and r["samples"] == 100 and r["throughput_per_s"] > 0


def test_server_poisson_and_budget(tiny_onnx):
    doc = job.run_job(_job(tiny_onnx, scenario="server", qps=400, duration_s=2.0, iterations=10000, latency_budget_ms=1000.0))
    r = doc["results"][0]
    # qps * duration arrivals (over the 662 p99 needs); --iterations does not cap a server run
    assert r["samples"] == r["queries"] == 800 and r["latency_ms"]["p99"] is not None
    assert r["budget_held"] is True and r["achieved_qps"] > 100
    tight = job.run_job(_job(tiny_onnx, scenario="server", qps=400, duration_s=2.0, iterations=10000, latency_budget_ms=1e-6))
    assert tight["results"][0]["budget_held"] is False


def test_interleaved_models_turn_spinning_off(tiny_onnx):
    j = _job(tiny_onnx)
    j["models"].append({"name": "tiny2", "path": str(tiny_onnx)})
    doc = job.run_job(j)
    assert doc["interleaved"] is True
    assert [r["name"] for r in doc["results"]] == ["tiny", "tiny2"]
    assert all(r["session"]["allow_spinning"] is False for r in doc["results"])
    assert all(r["samples"] == 80 for r in doc["results"])


def test_provider_fallback_is_refused_unless_allowed_and_then_recorded(tiny_onnx):
    from edgedeploy.runtimes.errors import ProviderError

    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    # This host has no GPU: asking for the GPU providers is an error, never a silent CPU run.
    with pytest.raises(ProviderError, match="TensorrtExecutionProvider, CUDAExecutionProvider not available"):
        session.create(str(tiny_onnx), {"providers": gpu})
    _sess, info = session.create(str(tiny_onnx), {"providers": gpu, "allow_fallback": True})
    assert info["providers_unavailable"] == info["fallback"] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert info["providers_used"] == ["CPUExecutionProvider"]


def test_job_errors_name_the_field(tiny_onnx):
    with pytest.raises(job.JobError, match="scenario"):
        job.normalize(_job(tiny_onnx, scenario="batch"))
    with pytest.raises(job.JobError, match="qps"):
        job.normalize(_job(tiny_onnx, scenario="server"))
    with pytest.raises(job.JobError, match="no such file"):
        job.normalize({"models": [{"name": "x", "path": "/nonexistent.onnx"}]})


@pytest.mark.parametrize(
    "key, value, expect",
    [
        ("shape", {"batch": 0}, "a dim name and a size"),
        ("shape", {"batch": True}, "a dim name and a size"),
        ("fill_dims", {"height": 1 << 40}, "a dim name and a size"),
        ("fill_dims", {"": 3}, "a dim name and a size"),
        ("fill_dims", ["height"], "must map up to 64 dim names"),
        ("shape_strict", "no", "shape_strict must be true or false"),
    ],
)
def test_a_jobs_dims_are_checked_on_the_device(tiny_onnx, key, value, expect):
    with pytest.raises(job.JobError, match=expect):
        job.normalize(_job(tiny_onnx, **{key: value}))


def test_fill_dims_bind_only_what_the_model_has_and_the_shape_wins(tiny_onnx):
    """fill_dims (the sizes validation ran at) bind dims the shape leaves open; names the model
    lacks are ignored, and a non-strict default shape may name dims it lacks (a ViT's sequence)."""
    sess, _ = session.create(str(tiny_onnx), {})
    dims = inputs.symbolic_dims(session.signature(sess))
    j = job.normalize(_job(tiny_onnx, shape={"sequence": 4}, fill_dims={dims[0]: 3, "height": 9}, shape_strict=False))
    feeds = job._feeds(sess, j["models"][0], j)
    assert next(iter(feeds.values())).shape[0] == 3  # the fill bound the batch dim, by its exact name
    j = job.normalize(_job(tiny_onnx, shape={"batch": 2}, fill_dims={dims[0]: 3}))
    assert next(iter(job._feeds(sess, j["models"][0], j).values())).shape[0] == 2  # the shape wins
    strict = job.normalize(_job(tiny_onnx, shape={"batch": 1, "height": 4}))
    with pytest.raises(inputs.ShapeError, match="no such dim"):
        job._feeds(sess, strict["models"][0], strict)


@pytest.mark.parametrize(
    "run, expect",
    [
        ({"intra_op_threads": 0}, "intra_op_threads 0: must be 1"),
        ({"intra_op_threads": True}, "intra_op_threads: got True"),
        ({"graph_optimization_level": "max"}, "use one of"),
        ({"allow_spinning": True}, "unknown run setting 'allow_spinning'"),
        (["threads"], "must be a mapping"),
    ],
)
def test_a_models_own_session_settings_are_checked_on_the_device(tiny_onnx, run, expect):
    """tune gives each model its own session options; the device checks them like the rest of the job."""
    bad = _job(tiny_onnx)
    bad["models"][0]["run"] = run
    with pytest.raises(job.JobError, match=expect):
        job.normalize(bad)


def test_a_models_own_session_settings_are_used(tiny_onnx):
    j = _job(tiny_onnx, iterations=5, warmup=1)
    j["models"].append({"name": "one-thread", "path": str(tiny_onnx), "run": {"intra_op_threads": 1, "cpu_mem_arena": False}})
    doc = job.run_job(j)
    own = next(r for r in doc["results"] if r["name"] == "one-thread")["session"]
    assert own["intra_op_threads"] == 1 and own["cpu_mem_arena"] is False
    assert next(r for r in doc["results"] if r["name"] == "tiny")["session"]["cpu_mem_arena"] is True


def test_harness_overhead_against_bare_session_run(tiny_onnx):
    """Median per-inference time of the harness within 5 % (or 20 us) of a bare loop."""
    sess, _ = session.create(str(tiny_onnx), {"intra_op_threads": 1})
    feeds = {"x": np.ones((1, 16), np.float32)}
    target = measure.Timed("t", lambda: sess.run(["y"], feeds))
    for _ in range(200):
        sess.run(["y"], feeds)
    bare, harness = [], []
    for _ in range(5):  # interleave both in blocks so drift hits both alike
        lat = []
        for _ in range(400):
            t0 = time.perf_counter()
            sess.run(["y"], feeds)
            lat.append((time.perf_counter() - t0) * 1e3)
        bare.extend(lat)
        harness.extend(measure.steady(target, len(target.latencies_ms) + 400, 60.0)[-400:])
    b, h = float(np.median(bare)), float(np.median(harness))
    assert h <= max(b * 1.05, b + 0.020), f"harness {h * 1e3:.1f} us vs bare {b * 1e3:.1f} us"


def test_cli_runtime_exit_codes(tiny_onnx, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "edgedeploy.runtimes", *map(str, a)], capture_output=True, text=True)
    ok = run("bench", tiny_onnx, "--shape", "batch=1", "--iterations", "20", "--quiet", "-o", tmp_path / "r.json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["samples"] == 20
    bad = run("bench", tiny_onnx, "--shape", "sequence=3", "--iterations", "5")
    assert bad.returncode == 2 and "batch" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "job.json").write_text("{not json")
    assert run("run", tmp_path / "job.json").returncode == 2
    chk = run("check")
    assert chk.returncode == 0 and json.loads(chk.stdout)["missing"] == []


@pytest.mark.parametrize(
    "body, needle", [(b"[1, 2]", "JSON object"), (b"{" * 10 + b"x", "cannot read job file"), (b" " * ((16 << 20) + 1), "over 16,777,216 bytes")]
)
def test_a_bad_job_file_is_exit_2_on_the_device(tmp_path, capsys, body, needle):
    from edgedeploy.runtimes.__main__ import main

    job = tmp_path / "job.json"
    job.write_bytes(body)
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(job), "--quiet"])
    assert exit_.value.code == 2
    assert needle in capsys.readouterr().err
