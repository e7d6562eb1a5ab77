"""Quantization methods are plugins: a method is one registered class, and everything that lists
or dispatches methods reads the registry. The toy method below is defined and registered here,
in the test process, with no other file touched."""

import json
from pathlib import Path

import pytest
from conftest import cli, one_line_error
from pydantic import Field

from edgedeploy.core.errors import BadInput
from edgedeploy.quantize import methods
from edgedeploy.quantize.methods.registry import MethodConfig, QuantMethod, RunContext, register, unregister


class ToyConfig(MethodConfig):
    toy_matmuls_only: bool = Field(True, description="toy: quantize MatMul weights only.")


class Toy(QuantMethod):
    """INT8 weights of MatMuls through ONNX Runtime's dynamic quantizer: small, but a real method."""

    name = "toy"
    summary = "a toy INT8 method registered by a test"
    Config = ToyConfig

    def run(self, src: Path, dst: Path, settings: dict, ctx: RunContext) -> dict:
        from onnxruntime.quantization import quantize_dynamic

        ops = ["MatMul"] if settings["toy_matmuls_only"] else None
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=ops, nodes_to_exclude=ctx.excluded or None)
        return {"toy_matmuls_only": settings["toy_matmuls_only"]}

    def tune_bases(self, rules, have_calib, have_fused):
        return [("plain", {})], []

    def tune_neighbours(self, settings, rules):
        return [{"toy_matmuls_only": not settings.get("toy_matmuls_only", True)}]


@pytest.fixture
def toy():
    register(Toy)
    yield methods.get("toy")
    unregister("toy")


def test_a_registered_method_is_in_the_flags_the_schema_profiles_and_tune(toy, tiny_onnx, tmp_path):
    from edgedeploy.device.profiles import load, validate
    from edgedeploy.tune import space
    from edgedeploy.tune.options import TuneOptions

    help_text = " ".join(cli("quantize", "--help", check=0).stdout.split())
    assert "[dynamic|fp16|int4|static|toy]" in help_text and "toy: a toy INT8 method registered by a test" in help_text
    assert "--toy-matmuls-only / --no-toy-matmuls-only toy: quantize MatMul weights only. [toy; default True]" in help_text
    variant = json.loads(cli("schema", "recipe", check=0).stdout)["$defs"]["VariantSpec"]["properties"]
    assert "toy" in variant["method"]["enum"] and "toy_matmuls_only" in variant
    profile = load("x86-64-avx2")
    validate({**profile, "quantization": {**profile["quantization"], "preferred": "toy"}}, "profile")
    assert TuneOptions(methods=["toy"]).methods == ["toy"]
    bases, _ = space.bases(profile, ["toy"], have_calib=False, have_fused=False)
    assert [b["method"] for b in bases] == ["toy"]
    assert space.neighbours(bases[0], profile)[0]["settings"] == {"toy_matmuls_only": False}

    out = tmp_path / "q"
    cli("quantize", tiny_onnx, "-o", out, "--method", "toy", "--no-toy-matmuls-only", check=0)
    q = json.loads((out / "edgedeploy.json").read_text())["quantization"]
    assert q["method"] == "toy" and q["settings"] == {"toy_matmuls_only": False} and q["chosen_by"]["toy_matmuls_only"] == "flag"
    assert q["options"]["toy_matmuls_only"] is False


def test_the_registry_refuses_what_it_cannot_dispatch(toy, tiny_onnx, tmp_path):
    with pytest.raises(BadInput, match="unknown quantization method 'nope'"):
        methods.get("nope")
    with pytest.raises(TypeError, match="already registered"):
        register(type("Other", (Toy,), {"name": "toy", "Config": ToyConfig}))
    line = one_line_error(cli("quantize", tiny_onnx, "-o", tmp_path / "q", "--method", "nope", check=2))
    assert "--method" in line and "nope" in line
    line = one_line_error(cli("quantize", tiny_onnx, "-o", tmp_path / "q", "--method", "dynamic", "--toy-matmuls-only", check=2))
    assert "--toy-matmuls-only: applies to --method toy, not dynamic" in line
    assert not (tmp_path / "q").exists()


def test_an_unregistered_method_leaves_no_trace(tiny_onnx, tmp_path):
    assert "toy" not in methods.names()
    assert "--toy-matmuls-only" not in cli("quantize", "--help", check=0).stdout
    line = one_line_error(cli("quantize", tiny_onnx, "-o", tmp_path / "q", "--method", "toy", check=2))
    assert "toy" in line
