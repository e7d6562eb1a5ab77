"""The scenarios as MLPerf LoadGen defines them, on targets with known service times (a sleep of
a fixed length: what the latency must be is known in advance), then through the real harness
and the CLI on a real ONNX Runtime session."""

import json
import time
from pathlib import Path

import pytest
from conftest import cli, one_line_error

from edgedeploy.runtimes import job, measure
from edgedeploy.runtimes.stats import MIN_SAMPLES

# sleep() overshoots by tenths of a millisecond, more on a loaded host: the bounds allow 2 ms
SLACK_MS = 2.0


def sleeper(service_ms: float, name: str = "sleep") -> measure.Timed:
    return measure.Timed(name, lambda: time.sleep(service_ms / 1e3))


def test_single_stream_reports_the_service_time():
    r = measure.single_stream(sleeper(2.0), iterations=60, duration_s=30, warmup=2, warmup_s=1)
    lat = r["latency_ms"]
    assert r["samples"] == 60 and 2.0 <= lat["p50"] <= 2.0 + SLACK_MS and lat["p99"] is None  # 60 samples: no p99 claimed


def test_server_below_capacity_runs_the_queries_p99_needs_and_holds_its_budget():
    """20 % load (1 ms service at 200 qps): the run is at least the 662 queries p99 needs, though
    one second of arrivals is 200; latency is the service time plus rare queueing."""
    r = measure.server([sleeper(1.0)], qps=200, iterations=200, duration_s=1.0, warmup=2, warmup_s=1, latency_budget_ms=1.0 + 8 * SLACK_MS)
    assert r["queries"] == r["samples"] == MIN_SAMPLES[99] == 662
    assert 1.0 <= r["latency_ms"]["p50"] <= 1.0 + SLACK_MS and r["latency_ms"]["p99"] is not None
    assert r["budget_held"] is True and 150 <= r["achieved_qps"] <= 250


def test_an_overloaded_server_queues_and_misses_its_budget():
    """5 ms service at 400 qps is twice the capacity: queries wait behind each other, so latency
    from arrival grows far past the service time, and the verdict is a miss."""
    r = measure.server([sleeper(5.0)], qps=400, iterations=200, duration_s=1.0, warmup=2, warmup_s=1, latency_budget_ms=20.0)
    assert r["queries"] == 662 and r["budget_held"] is False
    assert r["latency_ms"]["p99"] > 500 and r["achieved_qps"] < 220  # the queue: the last query waited about 1.6 s


def test_two_sessions_serve_what_one_cannot():
    """The same load with concurrency 2 (capacity 400/s for 300 qps) holds: p50 near the service time."""
    one = measure.server([sleeper(5.0)], qps=300, iterations=200, duration_s=1.0, warmup=1, warmup_s=1, latency_budget_ms=50.0)
    two = measure.server([sleeper(5.0), sleeper(5.0)], qps=300, iterations=200, duration_s=1.0, warmup=1, warmup_s=1, latency_budget_ms=50.0)
    assert one["budget_held"] is False and two["budget_held"] is True and two["concurrency"] == 2
    assert 5.0 <= two["latency_ms"]["p50"] <= 5.0 + 3 * SLACK_MS


def test_multi_stream_times_whole_queries():
    """A query of 3 samples of 1 ms takes 3 ms; the metric is the p99 of query latency, over the 662 queries it needs."""
    r = measure.multi_stream(sleeper(1.0), samples_per_query=3, iterations=10, duration_s=30, warmup=2, warmup_s=1)
    assert r["queries"] == r["samples"] == 662 and r["samples_per_query"] == 3 and r["batch"] == 3
    assert 3.0 <= r["latency_ms"]["p50"] <= 3.0 + 2 * SLACK_MS and r["latency_ms"]["p99"] >= r["latency_ms"]["p50"]


def test_concurrent_sessions_split_the_threads(tiny_onnx):
    doc = job.run_job(
        {
            "models": [{"name": "tiny", "path": str(tiny_onnx)}],
            "shape": {"batch": 4},
            "scenario": "offline",
            "concurrency": 2,
            "iterations": 40,
            "warmup": 1,
            "profile": {"name": "test", "run": {"intra_op_threads": 2}},
        }
    )
    assert doc["results"][0]["session"]["intra_op_threads"] == 1  # 2 sessions share 2 threads, not 2 each
    assert job.split_threads({"intra_op_threads": 3}, 4) == {"intra_op_threads": 1}
    assert job.split_threads({"intra_op_threads": 8}, 1) == {"intra_op_threads": 8}


def test_bench_server_with_a_budget_prints_p99_and_the_verdict(tiny_onnx, tmp_path):
    """The default --iterations (200) no longer caps a server run below the 662 queries p99 needs;
    --duration 1 only keeps the test short. A missed budget is exit 1, after the table."""
    proc = cli("bench", tiny_onnx, "--scenario", "server", "--qps", "1000", "--latency-budget", "1000", "--duration", "1", check=0)
    assert "1000 queries at 1000 qps, p99" in proc.stdout and "vs budget 1000 ms: held" in proc.stdout
    out = tmp_path / "r.json"
    miss = cli("bench", tiny_onnx, "--scenario", "server", "--qps", "1000", "--latency-budget", "0.000001", "--duration", "1", "-o", out, check=1)
    assert "MISSED" in miss.stdout and "latency budget missed" in one_line_error(miss)
    assert json.loads(out.read_text())["results"][0]["budget_held"] is False  # the results are written before the verdict


def test_bench_multi_stream(tiny_onnx):
    proc = cli("bench", tiny_onnx, "--scenario", "multi-stream", "--samples-per-query", "4", "--json", check=0)
    r = json.loads(proc.stdout)["results"][0]
    assert r["samples_per_query"] == 4 and r["queries"] == 662 and r["latency_ms"]["p99"] is not None


@pytest.mark.parametrize("bad", [{"samples_per_query": 0}, {"samples_per_query": 5000}])
def test_bad_samples_per_query_is_a_job_error(tiny_onnx, bad):
    with pytest.raises(job.JobError, match="samples_per_query"):
        job.normalize({"models": [{"name": "tiny", "path": str(tiny_onnx)}], "scenario": "multi-stream", **bad})


def test_per_node_placement_is_read_from_the_profiler(tiny_onnx):
    """On this CPU-only host every node runs on the CPU: forced on, the placement counts them."""
    doc = job.run_job(
        {
            "models": [{"name": "tiny", "path": str(tiny_onnx)}],
            "shape": {"batch": 2},
            "iterations": 5,
            "warmup": 0,
            "placement": True,
            "profile": {"name": "t", "run": {}},
        }
    )
    placed = doc["results"][0]["session"]["placement"]
    assert placed["by_provider"] == {"CPUExecutionProvider": placed["nodes"]} and placed["nodes"] >= 1 and placed["on_cpu"] == []
    plain = job.run_job(
        {
            "models": [{"name": "tiny", "path": str(tiny_onnx)}],
            "shape": {"batch": 2},
            "iterations": 5,
            "warmup": 0,
            "profile": {"name": "t", "run": {}},
        }
    )
    assert "placement" not in plain["results"][0]["session"]  # CPU asked for, CPU got: no profiled run


def test_cpu_fallback_under_an_accelerator_is_named_and_require_provider_refuses_it():
    """No GPU here, so these profiler events are written as a TensorRT session on a Jetson writes
    them (a stand-in for what cannot run on this host): 3 subgraphs on TensorRT, 2 nodes on the CPU."""
    from edgedeploy.runtimes import placement
    from edgedeploy.runtimes.errors import ProviderError

    events = [{"cat": "Session", "name": "model_run"}]
    events += [{"cat": "Node", "name": f"TRTKernel_graph_main_{i}_kernel_time", "args": {"provider": "TensorrtExecutionProvider"}} for i in range(3)]
    events += [{"cat": "Node", "name": f"{n}_kernel_time", "args": {"provider": "CPUExecutionProvider"}} for n in ("/NonZero", "/Loop")]
    got = placement.summarize(events, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert got["summary"] == "5 nodes: 3 on TensorrtExecutionProvider, 2 on CPUExecutionProvider (on the CPU: /Loop, /NonZero)"
    with pytest.raises(ProviderError, match=r"2 node\(s\) fell back to the CPU"):
        placement.require_provider(got, "m")
    placement.require_provider(placement.summarize(events[:4], ["TensorrtExecutionProvider"]), "m")  # all on TensorRT: fine


def test_tensorrt_caches_outlive_the_run_and_a_float_reference_stays_fp32(tmp_path):
    """No TensorRT here: this checks the options a Jetson's session would be given (the profile's
    TensorRT section, as jetson-orin-nano ships it), not an engine build."""
    from edgedeploy.device.profiles import load
    from edgedeploy.runtimes import trt

    run = load("jetson-orin-nano")["run"]
    assert run["provider_options"][trt.TRT]["trt_fp16_enable"] is True
    model = {"artifact_digest": "a" * 64, "engine_cache_root": str(tmp_path / "engines"), "precision": "fp32"}
    got = trt.for_model(run, model, "1.23.0")[("provider_options")][trt.TRT]
    assert got["trt_fp16_enable"] is False  # the float reference is measured in FP32
    assert got["trt_engine_cache_path"] == got["trt_timing_cache_path"] and Path(got["trt_engine_cache_path"]).is_dir()
    assert Path(got["trt_engine_cache_path"]).parent == tmp_path / "engines"
    fp16 = trt.for_model(run, {**model, "precision": "fp16"}, "1.23.0")["provider_options"][trt.TRT]
    assert fp16["trt_fp16_enable"] is True and fp16["trt_engine_cache_path"] != got["trt_engine_cache_path"]  # other options: another engine
    same = trt.for_model(run, model, "1.23.0")["provider_options"][trt.TRT]["trt_engine_cache_path"]
    newer = trt.for_model(run, model, "1.24.0")["provider_options"][trt.TRT]["trt_engine_cache_path"]
    other = trt.for_model(run, {**model, "artifact_digest": "b" * 64}, "1.23.0")["provider_options"][trt.TRT]["trt_engine_cache_path"]
    assert same == got["trt_engine_cache_path"] and len({same, newer, other}) == 3
    assert trt.for_model({"providers": ["CPUExecutionProvider"]}, model, "1.23.0") == {"providers": ["CPUExecutionProvider"]}


def test_offline_searches_the_largest_batch_that_fits_and_pays(tiny_onnx):
    """A tiny MatMul model gains throughput with batch until per-call overhead is amortized; the
    search doubles from the shape's batch, records each size, and measures at the one it keeps."""
    doc = job.run_job(
        {
            "models": [{"name": "tiny", "path": str(tiny_onnx)}],
            "shape": {"batch": 1},
            "scenario": "offline",
            "iterations": 50,
            "warmup": 1,
            "max_batch": 256,
        }
    )
    r = doc["results"][0]
    found = r["session"]["batch_search"]
    sizes = [t["batch"] for t in found["tried"]]
    assert sizes[0] == 1 and all(b == 2 * a for a, b in zip(sizes, sizes[1:])) and sizes[-1] <= 256
    assert r["batch"] == found["batch"] > 1 and r["inputs"]["x"][0] == found["batch"]  # measured at the batch it chose
    kept = next(t for t in found["tried"] if t["batch"] == found["batch"])
    assert kept["samples_per_s"] >= 1.05 * found["tried"][0]["samples_per_s"] or found["batch"] == 1


def test_the_batch_search_stops_where_throughput_stops_growing_or_memory_runs_out(monkeypatch):
    """The search's rule on given rates (the timing itself is the test above)."""
    from edgedeploy.runtimes import batch_search

    rates = {1: 100.0, 2: 190.0, 4: 380.0, 8: 390.0}  # samples/s: batch 8 adds under 5 %
    monkeypatch.setattr(batch_search, "_rate", lambda run, batch: run())

    def fake(batch):
        if batch not in rates:
            raise MemoryError
        return lambda: rates[batch]

    got = batch_search.search(1, 64, fake)
    assert got["batch"] == 4 and got["tried"][-1]["batch"] == 8 and "under 5% more" in got["tried"][-1]["stopped"]
    rates[8] = 2000.0  # batch 8 pays; 16 does not fit
    got = batch_search.search(1, 64, fake)
    assert got["batch"] == 8 and got["tried"][-1] == {"batch": 16, "stopped": "out of memory"}
    assert batch_search.search(1, 64, lambda b: None if b > 1 else (lambda: None))["tried"][-1]["stopped"].startswith("the model's batch")


@pytest.mark.parametrize("scenario,extra", [("single-stream", {}), ("server", {"qps": 400, "latency_budget_ms": 50.0})])
def test_loadgen_drives_the_scenario_and_its_summary_is_kept(tiny_onnx, tmp_path, monkeypatch, scenario, extra):
    """MLPerf's LoadGen (mlcommons-loadgen, installed by make setup) issues the queries; its own
    summary comes back with the result, and its minimums hold (at least 662 queries for p99)."""
    monkeypatch.chdir(tmp_path)  # LoadGen writes its logs to a folder of its own, never the working directory
    doc = job.run_job(
        {"models": [{"name": "tiny", "path": str(tiny_onnx)}], "shape": {"batch": 1}, "scenario": scenario, "iterations": 100}
        | {"duration_s": 1.0, "warmup": 2, "loadgen": True, **extra}
    )
    r = doc["results"][0]
    lg = r["loadgen"]
    assert lg["scenario"] == {"single-stream": "SingleStream", "server": "Server"}[scenario] and lg["valid"], lg["summary"]
    assert lg["summary"]["Scenario"] == lg["scenario"] and r["samples"] >= (662 if scenario == "server" else 100)
    assert r["latency_ms"]["p50"] > 0 and list(tmp_path.iterdir()) == []
