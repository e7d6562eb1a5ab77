"""`edgedeploy export`: real exports, validation against PyTorch, the artifact format."""

import json

import numpy as np
import onnx
import pytest
from conftest import cli, needs_minilm, on_optimum_stack, one_line_error
from hf_configs import ARCHS, build

from edgedeploy.core.artifact import MANIFEST, Artifact
from edgedeploy.export import export

REQUIRED = ("schema_version", "source", "files", "opset", "inputs", "outputs", "parameters", "size_bytes", "validation", "tool_versions")


def check_artifact(art: Artifact):
    m = art.manifest
    for key in REQUIRED:
        assert getattr(m, key) is not None, key
    assert m.validation.passed is True
    onnx.checker.check_model(str(art.model_path), full_check=True)
    assert art.verify() == []
    for name, meta in m.files.items():
        assert (art.path / name).stat().st_size == meta.size
    assert m.size_bytes == sum(f.size for f in m.files.values())


@needs_minilm
def test_minilm_export_matches_pytorch(minilm_artifact):
    art = minilm_artifact
    check_artifact(art)
    v = art.manifest.validation
    assert v.max_abs_diff < 1e-4
    assert len(v.cases) == 2
    assert {tuple(c["inputs"]["input_ids"]) for c in v.cases} == {(1, 16), (3, 7)}
    names = art.input_names
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    assert art.inputs[0].shape == ["batch_size", "sequence_length"]
    assert 22_000_000 < art.manifest.parameters < 23_000_000
    for f in ("tokenizer.json", "vocab.txt", "config.json"):
        assert (art.path / f).is_file()
    assert art.manifest.source.task == "feature-extraction"


@needs_minilm
def test_cli_export_optimized_on_real_sentences(tmp_path, sst2_dev):
    out = tmp_path / "opt"
    proc = cli("export", "minilm-l6", "-o", out, "--optimize", "--data", sst2_dev, "--json", check=0)
    doc = json.loads(proc.stdout)
    assert doc["validation"]["passed"] and doc["validation"]["max_abs_diff"] < 1e-4
    m = Artifact.load(out).manifest
    fused = m.export.optimize["fused_operators"]
    assert m.export.optimize["applied"] and fused.get("SkipLayerNormalization") == 12
    # onnxruntime.transformers matches attention in the TorchScript exporter's graph (optimum's);
    # transformers 5's torch.export graph keeps it unfused (README, "Two stacks")
    fused_ops = {"Attention", "SkipLayerNormalization"} if on_optimum_stack() else {"SkipLayerNormalization", "BiasGelu"}
    assert {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node} >= fused_ops
    assert fused.get("Attention") == (6 if on_optimum_stack() else None)
    assert m.validation.inputs_from == str(sst2_dev)
    assert m.validation.cases[0]["inputs"]["input_ids"][0] == 8  # batches of real, padded sentences


@pytest.mark.parametrize("arch", ARCHS)
def test_random_hf_architectures(arch, tmp_path):
    src = build(arch, tmp_path / f"{arch}-src")
    art = export(str(src), tmp_path / arch)
    check_artifact(art)
    assert art.manifest.validation.max_abs_diff < 1e-4
    assert art.manifest.source.model_type in (arch, "gpt2")


def test_a_class_optimum_cannot_infer_is_detected_from_the_auto_classes(tmp_path):
    """optimum's TasksManager cannot tell DeiTForImageClassification's task (its auto mapping
    lists it with the with-teacher class); edgedeploy finds it there, so no --task is needed. On
    transformers 5 (no optimum) detection reads the auto classes alone."""
    from transformers import DeiTForImageClassification

    try:
        from optimum.exporters.tasks import TasksManager
    except ImportError:
        TasksManager = None
    if TasksManager is not None:
        with pytest.raises(ValueError):
            TasksManager.infer_task_from_model(DeiTForImageClassification)
    art = export(str(build("deit", tmp_path / "deit-src")), tmp_path / "deit")
    check_artifact(art)
    assert art.manifest.source.task == "image-classification" and art.manifest.validation.passed


@pytest.mark.parametrize("arch,outputs", [("clip", {"logits_per_image", "text_embeds", "image_embeds"}), ("ast", {"logits"})])
def test_two_tower_and_spectrogram_models_export_with_their_own_inputs(arch, outputs, tmp_path):
    """CLIP takes text and an image at once and returns no last_hidden_state; AST's input_values
    are a spectrogram (batch, frames, mel bins). Both export without --task and validate."""
    art = export(str(build(arch, tmp_path / f"{arch}-src")), tmp_path / arch)
    check_artifact(art)
    m = art.manifest
    assert m.validation.passed and outputs <= {o.name for o in m.outputs}
    if arch == "clip":
        assert {i.name for i in m.inputs} >= {"input_ids", "pixel_values"}
    else:
        assert [i.shape[1:] for i in m.inputs] == [[64, 16]]


def test_a_ctc_speech_model_exports_without_a_task(tmp_path):
    """Wav2Vec2ForCTC is a speech model whose model type has no with-past task: detection takes
    the plain automatic-speech-recognition, not Whisper's with-past one."""
    art = export(str(build("wav2vec2-ctc", tmp_path / "w2v-src")), tmp_path / "w2v")
    check_artifact(art)
    assert art.manifest.source.task == "automatic-speech-recognition" and art.manifest.validation.passed


def test_a_vision_model_benches_with_the_default_shape(tmp_path):
    """A ViT's pixel_values has symbolic height and width and no sequence: the default --shape
    binds its batch, the rest come from validation; a --shape given must name dims it has."""
    export(str(build("vit", tmp_path / "vit-src")), tmp_path / "vit")
    res = json.loads(cli("bench", tmp_path / "vit", "--iterations", "3", "--warmup", "1", "--json", check=0).stdout)["results"][0]
    assert res["inputs"]["pixel_values"] == [1, 3, 32, 32]
    res = json.loads(cli("bench", tmp_path / "vit", "--shape", "batch=2", "--iterations", "3", "--warmup", "1", "--json", check=0).stdout)
    assert res["results"][0]["inputs"]["pixel_values"] == [2, 3, 32, 32]  # what --shape leaves open is filled
    proc = cli("bench", tmp_path / "vit", "--shape", "batch=1,sequence=8", check=2)
    assert "--shape sequence: the model has no such dim" in one_line_error(proc)


def test_sam_exports_as_one_graph_and_benches_and_quantizes_without_shapes(tmp_path):
    """optimum's default splits SAM into a vision encoder and a prompt-encoder/mask-decoder;
    edgedeploy asks for its monolith variant (one model.onnx, validated as usual); transformers 5's
    exporter traces the whole model as one graph too. Its own dims (points per image) take the
    sizes validation ran at, so bench and quantize need no --shape."""
    art = export(str(build("sam", tmp_path / "sam-src")), tmp_path / "sam")
    check_artifact(art)
    m = art.manifest
    assert [i.name for i in m.inputs] == ["pixel_values", "input_points", "input_labels"]
    assert [o.name for o in m.outputs] == ["iou_scores", "pred_masks"]
    assert m.source.task == ("feature-extraction" if on_optimum_stack() else "mask-generation")  # (optimum's name; transformers')
    assert m.validation.passed and m.graphs is None
    assert m.export.variant.startswith("monolith") if on_optimum_stack() else m.export.variant is None
    assert art.validated_dims() == {"point_batch_size": 3, "nb_points_per_image": 2}
    res = json.loads(cli("bench", tmp_path / "sam", "--iterations", "3", "--warmup", "1", "--json", check=0).stdout)["results"][0]
    assert res["inputs"]["input_points"] == [1, 3, 2, 2] and res["latency_ms"]["p50"] > 0
    q = cli("quantize", tmp_path / "sam", "-o", tmp_path / "q", "--method", "dynamic", "--eval-samples", "2", "--json", check=0)
    assert json.loads(q.stdout)["fidelity"]["samples"] == 2


@pytest.mark.parametrize("factory,spec", [("factories:tiny_cnn", "input:float32:batch,3,32,32"), ("factories:tiny_mlp", "x:float32:batch,64")])
def test_factory_modules_through_cli(factory, spec, tmp_path):
    out = tmp_path / "m"
    cli("export", "--factory", factory, "--input", spec, "-o", out, check=0)
    art = Artifact.load(out)
    check_artifact(art)
    assert art.manifest.export.exporter.startswith("torch.onnx (")
    assert art.inputs[0].shape[0] == "batch"  # the user's symbolic name survives


def test_factory_with_safetensors_weights(tmp_path):
    import factories
    import torch
    from safetensors.torch import save_file

    model = factories.tiny_mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    art = export(None, tmp_path / "m", factory="factories:tiny_mlp", weights=tmp_path / "w.safetensors", input=("x:float32:batch,64",))
    check_artifact(art)
    x = np.ones((2, 64), np.float32)
    import onnxruntime as ort

    got = ort.InferenceSession(str(art.model_path)).run(None, {"x": x})[0]
    want = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # the loaded weights, not the factory's


def test_torchscript_file(tmp_path):
    import factories
    import torch

    scripted = torch.jit.script(factories.tiny_mlp())
    scripted.save(str(tmp_path / "mlp.pt"))
    art = export(str(tmp_path / "mlp.pt"), tmp_path / "ts", input=("x:float32:batch,64",))
    check_artifact(art)
    assert art.manifest.source.kind == "torchscript"
    assert art.manifest.export.exporter == "torch.onnx (torchscript)"


def test_pickled_module_needs_trust_pickle(tmp_path):
    import factories
    import torch

    torch.save(factories.tiny_mlp(), tmp_path / "whole.pt")
    proc = cli("export", tmp_path / "whole.pt", "--input", "x:float32:batch,64", "-o", tmp_path / "out", check=2)
    assert "--trust-pickle" in one_line_error(proc)
    assert not (tmp_path / "out").exists()
    art = export(str(tmp_path / "whole.pt"), tmp_path / "trusted", input=("x:float32:batch,64",), trust_pickle=True)
    check_artifact(art)


def test_planted_mismatch_fails_and_publishes_nothing(tmp_path):
    out = tmp_path / "bad"
    proc = cli("export", "--factory", "factories:planted_mismatch", "--input", "x:float32:batch,16", "-o", out, check=1)
    assert "validation failed" in one_line_error(proc)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgedeploy")]


def test_a_model_that_samples_at_inference_is_named_as_such(tmp_path):
    """A mismatch caused by PyTorch disagreeing with itself says so (exit 1, nothing published);
    the planted, deterministic mismatch above still reports the difference from PyTorch."""
    out = tmp_path / "noisy"
    proc = cli("export", "--factory", "factories:samples_at_inference", "--input", "x:float32:batch,16", "-o", out, check=1)
    line = one_line_error(proc)
    assert "not deterministic" in line and "'output'" in line.replace('"', "'") and not out.exists()
    proc = cli("export", "--factory", "factories:planted_mismatch", "--input", "x:float32:batch,16", "-o", out, check=1)
    assert "differs from PyTorch" in one_line_error(proc) and "deterministic" not in one_line_error(proc)


def test_a_graph_that_runs_at_the_traced_shape_only_fails_validation_cleanly(tmp_path):
    """A Reshape baked to the traced batch: ONNX Runtime's error at the other batch size is a
    validation failure (exit 1, one line naming the inputs), not an internal error."""
    import factories
    import torch

    traced = torch.jit.trace(factories.fixed_batch_on_export(), torch.randn(2, 16))  # batch 2 becomes a constant
    traced.save(str(tmp_path / "fixed.pt"))
    out = tmp_path / "bad"
    proc = cli("export", tmp_path / "fixed.pt", "--input", "x:float32:batch,16", "-o", out, check=1)
    line = one_line_error(proc)
    assert "ONNX Runtime cannot run the exported model on inputs" in line and "internal error" not in line and not out.exists()


def test_tolerance_is_enforced_not_warned(tmp_path):
    """A tolerance below the float noise floor must fail the export (exit 1)."""
    proc = cli(
        "export", "--factory", "factories:tiny_cnn", "--input", "input:float32:batch,3,32,32", "--atol", "0", "--rtol", "0", "-o", tmp_path / "x"
    )
    # bit-exact ONNX vs PyTorch is possible for tiny graphs; either it passed exactly or it failed with exit 1
    if proc.returncode == 0:
        assert Artifact.load(tmp_path / "x").manifest.validation.max_abs_diff == 0.0
    else:
        assert proc.returncode == 1 and "validation failed" in one_line_error(proc)


def test_force_replaces_only_artifacts(tmp_path):
    spec = ("--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64")
    out = tmp_path / "a"
    cli("export", *spec, "-o", out, check=0)
    first = Artifact.load(out).manifest.created
    proc = cli("export", *spec, "-o", out, check=2)
    assert "--force" in one_line_error(proc)
    cli("export", *spec, "-o", out, "--force", check=0)
    assert Artifact.load(out).verify() == []
    assert Artifact.load(out).manifest.created >= first
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    proc = cli("export", *spec, "-o", precious, "--force", check=2)
    assert "not an edgedeploy artifact" in one_line_error(proc)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_verify_detects_tampering(tmp_path):
    out = tmp_path / "a"
    cli("export", "--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64", "-o", out, check=0)
    cli("verify", out, check=0)
    data = bytearray((out / "model.onnx").read_bytes())
    data[-5] ^= 0xFF
    (out / "model.onnx").write_bytes(bytes(data))
    proc = cli("verify", out, check=2)
    assert "model.onnx" in one_line_error(proc)
    proc = cli("bench", out, "--iterations", "5", check=2)
    assert "checksum" in one_line_error(proc)


def test_inspect_prints_manifest_table(tmp_path):
    out = tmp_path / "a"
    cli("export", "--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64", "-o", out, check=0)
    proc = cli("inspect", out, check=0)
    assert "validation" in proc.stdout and "passed" in proc.stdout and "input x" in proc.stdout
    doc = json.loads(cli("inspect", out, "--json", check=0).stdout)
    assert doc["validation"]["passed"] is True


def test_unsafe_external_data_location_is_refused(tmp_path):
    from onnx import TensorProto, helper

    from edgedeploy.core.artifact import check_external_data
    from edgedeploy.core.errors import BadInput

    t = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    t.data_location = TensorProto.EXTERNAL
    del t.float_data[:]
    entry = t.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [t]
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(BadInput, match="unsafe external-data location"):
        check_external_data(path)


def test_manifest_is_written_last(tmp_path):
    """A directory without a manifest is not an artifact: one holding a model.onnx is adopted as
    an ONNX model (and garbage there is refused), anything else is refused."""
    d = tmp_path / "half"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"\x08\x07")
    proc = cli("inspect", d, check=2)
    assert "model.onnx: not an ONNX model" in one_line_error(proc)
    (d / "model.onnx").unlink()
    (d / "weights.bin").write_bytes(b"\x08\x07")
    assert MANIFEST in one_line_error(cli("inspect", d, check=2))


def test_torch_onnx_registry_is_built_once_per_process_and_each_export_gets_its_own_copy(tmp_path):
    """exporters.torchlib_registry: the second export reuses the first's operator registry, gets
    a copy it may change without touching the next one's, and writes the same graph as an export
    that built its own registry."""
    import torch
    from factories import tiny_mlp
    from torch.onnx._internal.exporter._registration import ONNXRegistry

    from edgedeploy.exporters import torchlib_registry

    original = ONNXRegistry.from_torchlib
    model, x = tiny_mlp(), (torch.zeros(2, 64),)
    torch.onnx.export(model, x, str(tmp_path / "own.onnx"), dynamo=True, verbose=False, report=False)
    with torchlib_registry.reused():
        first = ONNXRegistry.from_torchlib()
        first.functions.clear()  # what an export's custom ops would do to its copy
        second = ONNXRegistry.from_torchlib()
        assert second.functions and second is not first
        torch.onnx.export(model, x, str(tmp_path / "reused.onnx"), dynamo=True, verbose=False, report=False)
    assert ONNXRegistry.from_torchlib == original  # restored after the block
    assert onnx.load(str(tmp_path / "reused.onnx")) == onnx.load(str(tmp_path / "own.onnx"))  # the same graph (the files' field order varies)
