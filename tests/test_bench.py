"""`edgedeploy bench` / `estimate` on the real MiniLM artifact."""

import json

import pytest
from conftest import cli, needs_minilm, one_line_error

from edgedeploy.bench import require_stable
from edgedeploy.core.errors import InvalidBenchmark


@pytest.fixture(scope="module")
def int8_artifact(minilm_artifact, tmp_path_factory, sst2_dev):
    from edgedeploy.quantize.api import quantize

    return quantize(minilm_artifact.path, tmp_path_factory.mktemp("q") / "int8", "dynamic", eval_data=sst2_dev, eval_samples=16)


@needs_minilm
def test_bench_minilm_prints_table_and_writes_json(minilm_artifact, tmp_path):
    out = tmp_path / "results.json"
    proc = cli("bench", minilm_artifact.path, "--shape", "batch=1,sequence=32", "--iterations", "70", "--warmup", "3", "-o", out, check=0)
    assert "p50 ms" in proc.stdout and "minilm-l6" in proc.stdout and f"results: {out}" in proc.stdout
    doc = json.loads(out.read_text())
    r = doc["results"][0]
    for key in (
        "latency_ms",
        "throughput_per_s",
        "init_ms",
        "first_inference_ms",
        "peak_rss_mb",
        "stable",
        "samples",
        "latencies_ms",
        "model_size_bytes",
    ):
        assert key in r, key
    assert set(r["latency_ms"]) >= {"p50", "p90", "p99", "mean", "std", "min", "max", "cv"}
    assert r["samples"] == 70 and r["latency_ms"]["p90"] is not None and r["latency_ms"]["p99"] is None
    assert r["inputs"]["input_ids"] == [1, 32]
    assert doc["environment"]["profile"] == doc["profile"] and doc["environment"]["onnxruntime"]


@needs_minilm
def test_bench_interleaves_variants_and_ratios(minilm_artifact, int8_artifact):
    from edgedeploy.bench import bench

    doc = bench([minilm_artifact.path, int8_artifact.path], shape="batch=1,sequence=64", iterations=30, warmup=2, duration=60)
    assert doc["interleaved"] is True
    a, b = doc["results"]
    assert a["ratio_to_first"] == 1.0
    assert b["ratio_to_first"] == pytest.approx(b["latency_ms"]["p50"] / a["latency_ms"]["p50"])
    assert a["artifact_digest"] == minilm_artifact.digest and b["model_size_bytes"] < a["model_size_bytes"] / 3


@needs_minilm
def test_bench_torch_baseline(minilm_artifact):
    from edgedeploy.bench import bench

    doc = bench([minilm_artifact.path], shape="batch=1,sequence=32", baseline="torch", iterations=20, warmup=2)
    names = [r["name"] for r in doc["results"]]
    assert names[0] == "minilm-l6" and names[1].startswith("pytorch-eager")
    assert doc["results"][1]["baseline"] == "torch" and doc["results"][1]["samples"] == 20


@needs_minilm
def test_bench_bad_shape_is_a_one_line_error(minilm_artifact):
    proc = cli("bench", minilm_artifact.path, "--shape", "height=3", "--iterations", "5", check=2)
    assert "batch_size, sequence_length" in one_line_error(proc)


def test_require_stable_gate():
    require_stable({"unstable": []})
    with pytest.raises(InvalidBenchmark) as exc:
        require_stable({"unstable": ["int8"]})
    assert exc.value.exit_code == 4 and "int8" in str(exc.value)


@needs_minilm
def test_estimate_is_labelled_and_calibrated(minilm_artifact):
    proc = cli("estimate", minilm_artifact.path, "--profile", "rpi4", "--profile", "jetson-nano", "--shape", "batch=1,sequence=128", check=0)
    out = proc.stdout
    assert "2.8" in out.split("GFLOP")[0]  # MiniLM at 1x128 is about 2.87 GFLOP
    assert "method error on this host" in out
    assert out.count("ESTIMATE") == 2 and "calibrated" in out
    doc = json.loads(cli("estimate", minilm_artifact.path, "--profile", "rpi4", "--no-calibrate", "--json", check=0).stdout)
    assert doc["estimates"][0]["kind"] == "estimated" and doc["calibration"] is None
    assert set(doc["shape"].values()) == {1, 128}  # the default binds batch and sequence where the model has them


def test_estimate_without_a_shape_binds_only_the_dims_the_model_has(tiny_onnx):
    """A model with a batch dim and no sequence: the default shape is not an error (as in bench)."""
    doc = json.loads(cli("estimate", tiny_onnx, "--profile", "rpi4", "--no-calibrate", "--json", check=0).stdout)
    assert doc["shape"] == {"batch": 1} and doc["counts"]["flops_float"] > 0
    assert "sequence" in one_line_error(cli("estimate", tiny_onnx, "--profile", "rpi4", "--shape", "batch=1,sequence=8", check=2))


@needs_minilm
def test_baseline_torch_with_host_is_refused(minilm_artifact):
    proc = cli("bench", minilm_artifact.path, "--host", "pi@example.invalid", "--profile", "rpi4", "--baseline", "torch", check=2)
    assert "--baseline torch runs on the host" in one_line_error(proc)


def test_a_missing_execution_provider_fails_loudly(tmp_path):
    """CPU-only onnxruntime here: asking for CUDA (by flag or by a Jetson profile) is exit 3 naming
    what was requested and what exists; --allow-fallback measures on CPU and records it."""
    out = tmp_path / "a"
    cli("export", "--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64", "-o", out, check=0)
    base = ("bench", out, "--shape", "batch=1", "--iterations", "3", "--warmup", "0")
    line = one_line_error(cli(*base, "--providers", "CUDAExecutionProvider", check=3))
    assert "CUDAExecutionProvider not available" in line and "CPUExecutionProvider" in line
    assert "TensorrtExecutionProvider" in one_line_error(cli(*base, "--profile", "jetson-orin-nano", check=3))
    proc = cli(*base, "--providers", "CUDAExecutionProvider,CPUExecutionProvider", "--allow-fallback", "-o", tmp_path / "r.json", check=0)
    session = json.loads((tmp_path / "r.json").read_text())["results"][0]["session"]
    assert session["fallback"] == ["CUDAExecutionProvider"] and session["providers_used"] == ["CPUExecutionProvider"]
    assert "measured on CPUExecutionProvider" in proc.stderr
    assert "unknown execution provider" in one_line_error(cli(*base, "--providers", "Bogus", check=2))
