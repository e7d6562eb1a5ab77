"""Graph fusions left out at export (--no-fusion) and ONNX Runtime fusions switched off per
session (``disabled_optimizers``), which `edgedeploy tune` measures and records in the winner's
manifest (``run``) so that `bench` and the device harness run what was measured."""

import json

import onnx
import pytest
from conftest import cli, on_optimum_stack, one_line_error

from edgedeploy.bench import bench
from edgedeploy.core.artifact import Artifact
from edgedeploy.runtimes import job, session
from edgedeploy.tune import space


@pytest.fixture(scope="module")
def unfused(tiny_classifier_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fusions") / "noskip"
    cli("export", tiny_classifier_dir, "-o", out, "--optimize", "--no-fusion", "skip_layer_norm", check=0)
    return out


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_export_leaves_out_the_fusion_asked_for(unfused):
    m = Artifact.load(unfused).manifest
    assert m.export.optimize["left_out"] == ["skip_layer_norm"]
    assert m.validation.passed
    ops = _ops(unfused / "model.onnx")
    assert ("Attention" if on_optimum_stack() else "BiasGelu") in ops and "LayerNormalization" in ops  # the other fusions still happen
    assert "SkipLayerNormalization" not in ops


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--no-fusion", "skip_layer_norm"], "give --optimize too"),
        (["--optimize", "--no-fusion", "skip-layernorm"], "--no-fusion: must be one of"),
    ],
)
def test_bad_no_fusion_flags(tiny_classifier_dir, tmp_path, args, expect):
    proc = cli("export", tiny_classifier_dir, "-o", tmp_path / "x", *args, check=2)
    assert expect in one_line_error(proc)
    assert not (tmp_path / "x").exists()


def _optimized_ops(path, tmp_path, disabled) -> set[str]:
    opts = session.session_options({"graph_optimization_level": "extended"})
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    session.load(path, opts, ["CPUExecutionProvider"], disabled_optimizers=disabled)
    return _ops(tmp_path / "optimized.onnx")


def test_every_optimizer_we_accept_is_one_ort_knows(unfused, tmp_path):
    """ORT ignores names it does not know; each accepted name must change the optimized graph."""
    from onnxruntime.quantization import quantize_dynamic

    q = tmp_path / "q.onnx"
    quantize_dynamic(str(unfused / "model.onnx"), str(q), extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    base = _optimized_ops(q, tmp_path, [])
    assert {"SkipLayerNormalization", "DynamicQuantizeMatMul"} <= base  # ORT fuses Add + LayerNormalization online
    without = {name: _optimized_ops(q, tmp_path, [name]) for name in session.DISABLEABLE}
    assert "SkipLayerNormalization" not in without["SkipLayerNormFusion"]
    assert "DynamicQuantizeMatMul" not in without["DynamicQuantizeMatMulFusion"]
    assert "MatMulIntegerToFloat" not in without["MatMulIntegerToFloatFusion"]
    assert all(ops != base for ops in without.values())
    with pytest.raises(ValueError, match="unknown optimizer"):
        session.load(q, session.session_options({}), ["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusio"])


@pytest.mark.parametrize(
    "disabled, expect",
    [
        (["NoSuchFusion"], "disabled_optimizers"),
        (["SkipLayerNormFusion", "SkipLayerNormFusion"], "each at most once"),
        ("SkipLayerNormFusion", "disabled_optimizers: got"),
        ([{"name": "SkipLayerNormFusion"}], "disabled_optimizers"),
    ],
)
def test_a_devices_job_checks_disabled_optimizers(tiny_onnx, disabled, expect):
    bad = {"models": [{"name": "m", "path": str(tiny_onnx), "run": {"disabled_optimizers": disabled}}]}
    with pytest.raises(job.JobError, match=expect):
        job.normalize(bad)


def _with_run(src, tmp_path, run) -> Artifact:
    import shutil

    dst = tmp_path / "with-run"
    shutil.copytree(src, dst)
    manifest_path = dst / "edgedeploy.json"
    m = json.loads(manifest_path.read_text())
    m["run"] = run
    manifest_path.write_text(json.dumps(m))
    return dst


def test_bench_runs_the_session_an_artifact_asks_for(unfused, tmp_path):
    art = _with_run(unfused, tmp_path, {"disabled_optimizers": ["SkipLayerNormFusion"], "intra_op_threads": 1})
    doc = bench([art], iterations=5, warmup=1, shape="batch=1,sequence=16")
    used = doc["results"][0]["session"]
    assert used["disabled_optimizers"] == ["SkipLayerNormFusion"] and used["intra_op_threads"] == 1
    # --threads wins over the artifact's thread count, not over the rest of its settings
    doc = bench([art], iterations=5, warmup=1, shape="batch=1,sequence=16", threads=2)
    used = doc["results"][0]["session"]
    assert used["disabled_optimizers"] == ["SkipLayerNormFusion"] and used["intra_op_threads"] == 2


@pytest.mark.parametrize(
    "run, expect",
    [("fast", "run: expected a mapping"), ({"spin": True}, "unknown run setting 'spin'"), ({"disabled_optimizers": ["X"]}, "from")],
)
def test_a_hostile_manifest_run_is_a_clear_error(unfused, tmp_path, run, expect):
    art = _with_run(unfused, tmp_path, run)
    proc = cli("bench", art, "--iterations", "3", "--shape", "batch=1,sequence=8", check=2)
    line = one_line_error(proc)
    assert expect in line and "with-run" in line


def test_tune_tries_orts_fusion_off_only_on_the_cpu_provider():
    cpu = space.session_variants({"intra_op_threads": 2}, 2)
    assert {"disabled_optimizers": ["SkipLayerNormFusion"]} in cpu
    gpu = space.session_variants({"intra_op_threads": 2, "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}, 2)
    assert not any("disabled_optimizers" in v for v in gpu)


def test_help_lists_the_fusions_that_can_be_left_out():
    proc = cli("export", "--help", check=0)
    assert "--no-fusion [skip_layer_norm|bias_gelu|gelu|attention|embed_layer_norm|layer_norm]" in " ".join(proc.stdout.split())
