"""Settings declared once: flags, recipe keys, manifest options and JSON Schema all come from
the typed declarations; a bad recipe reports every
problem at once."""

import json

import pytest
from conftest import cli, one_line_error
from hypothesis import given, settings
from hypothesis import strategies as st

from edgedeploy.bench import BenchOptions
from edgedeploy.compress.options import DistillOptions, PruneOptions
from edgedeploy.core.options import field_flag
from edgedeploy.export import ExportOptions
from edgedeploy.quality.evaluate import EvalOptions
from edgedeploy.quantize.methods.registry import settings_fields
from edgedeploy.quantize.options import QuantizeOptions
from edgedeploy.release.budgets import Budgets, column

COMMANDS = {
    "quantize": QuantizeOptions,
    "export": ExportOptions,
    "bench": BenchOptions,
    "prune": PruneOptions,
    "distill": DistillOptions,
    "eval": EvalOptions,
}


def schema(what: str) -> dict:
    return json.loads(cli("schema", what, check=0).stdout)


def test_schema_recipe_lists_every_quantize_setting_as_a_variant_key():
    s = schema("recipe")
    variant = s["$defs"]["VariantSpec"]["properties"]
    assert QuantizeOptions.input_keys() <= set(variant) and "settings" not in variant
    assert {"dynamic", "static", "fp16", "int4", "float", "tune"} == set(variant["method"]["enum"])
    assert {"gate", "model"} <= set(variant)
    assert "min_cosine" not in variant  # unreleased: a renamed setting has no alias
    target = s["$defs"]["TargetSpec"]["properties"]
    assert {"iterations", "duration", "warmup", "threads", "shape", "host", "remote_venv", "timeout", "max_cv", "budgets"} <= set(target)
    assert set(Budgets.model_fields) <= set(s["$defs"]["Budgets"]["properties"])
    assert "min_cosine" not in s["$defs"]["Budgets"]["properties"]


def test_schema_manifest_describes_the_manifest(minilm_artifact):
    s = schema("manifest")
    assert {"schema_version", "source", "files", "opset", "inputs", "outputs", "size_bytes"} <= set(s["required"])
    assert set(json.loads((minilm_artifact.path / "edgedeploy.json").read_text())) <= set(s["properties"])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_declared_setting_is_a_flag(command):
    """The help text is generated from the declaration: every field has its flag, with its help."""
    out = cli(command, "--help", check=0).stdout
    cls = COMMANDS[command]
    for name in sorted(cls.input_keys()):
        field = cls.model_fields[name] if name in cls.model_fields else settings_fields()[name][0]  # a quantization method's setting
        flag = field_flag(cls, name)
        assert flag in out, f"{command}: {flag} missing from --help"
        assert field.description.split()[0] in out


def test_budget_names_match_report_columns():
    from edgedeploy.release.report.render import CSV_FIELDS

    assert {"min_mean_cosine", "min_worst_cosine"} <= set(Budgets.model_fields)
    timed = {"p50_ms", "p90_ms", "throughput"}  # per target, in the target columns
    assert {column(b) for b in Budgets.model_fields} <= set(CSV_FIELDS) | timed | {"throughput"}
    assert "min_cosine" not in CSV_FIELDS and "worst_cosine" in CSV_FIELDS


def test_an_old_flag_name_is_an_unknown_option(tmp_path):
    """edgedeploy is unreleased: a renamed flag has no hidden alias."""
    line = one_line_error(cli("quantize", tmp_path / "missing", "-o", tmp_path / "out", "--method", "dynamic", "--min-cosine", "0.99", check=2))
    assert "--min-cosine" in line and "No such option" in line, line


@pytest.mark.parametrize(
    "args,expected",
    [
        (["bench", "X", "--threads", "0"], "--threads: must be >= 1, got 0"),
        (["bench", "X", "--iterations", "-5"], "--iterations: must be >= 1"),
        (["bench", "X", "--scenario", "server", "--qps", "-5"], "--qps: must be > 0"),
        (["quantize", "X", "-o", "Y", "--method", "dynamic", "--eval-samples", "0"], "--eval-samples: must be >= 1"),
        (["quantize", "X", "-o", "Y", "--method", "int4", "--block-size", "7"], "--block-size: must be one of 16, 32, 64, 128 or 256"),
        (["prune", "X", "-o", "Y", "--ffn", "1.5"], "--ffn: must be < 1"),
    ],
)
def test_flag_values_are_checked_before_work_starts(args, expected):
    line = one_line_error(cli(*args, check=2))
    assert expected in line


def test_several_flag_errors_are_reported_together():
    line = one_line_error(cli("bench", "X", "--threads", "0", "--iterations", "0", check=2))
    assert "--threads" in line and "--iterations" in line


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_a_bad_recipe_reports_every_problem_at_once(tmp_path):
    recipe = write(
        tmp_path,
        (
            "source: minilm-l6\n"
            "variants:\n"
            "  int8: {methd: dynamic}\n"  # 3: unknown key (did you mean), and method missing
            "  int4: {method: int4, block_size: 7}\n"  # 4: not a block size
            "targets:\n"
            "  - name: local\n"
            "    iterations: -1\n"  # 7: negative
            "budgets:\n"
            "  max_size_mb: .nan\n"
        ),
    )  # 9: NaN
    run_dir = tmp_path / "run"
    proc = cli("run", recipe, "--run-dir", run_dir, check=2)
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgedeploy: error:")]
    text = "\n".join(errors)
    assert "r.yaml:3: variants.int8.methd: unknown key; did you mean 'method'?" in text
    assert "r.yaml:3: variants.int8: missing required key 'method'" in text
    assert "r.yaml:4: variants.int4.block_size: must be one of" in text
    assert "r.yaml:7: targets.0.iterations: must be >= 1" in text
    assert "r.yaml:9: budgets.max_size_mb: must be a finite number" in text
    assert len(errors) == 5
    assert not run_dir.exists()


def test_old_recipe_keys_are_unknown_keys_with_a_suggestion(tmp_path):
    from edgedeploy.release.recipe import RecipeError, load

    recipe = write(
        tmp_path,
        "source: minilm-l6\nvariants:\n  aware: {method: dynamic, min_cosine: 0.99}\ntargets:\n  - name: local\nbudgets:\n  min_cosine: 0.95\n",
    )
    with pytest.raises(RecipeError) as err:
        load(recipe)
    text = str(err.value)
    assert "variants.aware.min_cosine: unknown key; did you mean 'min_mean_cosine'?" in text, text
    assert "budgets.min_cosine: unknown key; did you mean 'min_mean_cosine'?" in text, text


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "variants:\n  ../../escaped: {method: dynamic}\ntargets:\n  - name: local\n",
            ":3: variants.../../escaped: '../../escaped' is not a valid name",
        ),
        ("variants:\n  a: {method: dynamic}\ntargets:\n  - name: ../up\n", ":5: targets.0.name: '../up' is not a valid name"),
        (
            "variants:\n  a: {method: float}\ncompress:\n  .hidden: {method: prune, heads: 0.2}\ntargets:\n  - name: l\n",
            ":5: compress..hidden: '.hidden' is not",
        ),
    ],
)
def test_names_that_become_paths_are_identifiers(tmp_path, text, expected):
    run_dir = tmp_path / "run"
    line = one_line_error(cli("run", write(tmp_path, "source: minilm-l6\n" + text), "--run-dir", run_dir, check=2))
    assert expected in line
    assert not run_dir.exists()


def test_resolving_a_reference_source_never_trains(tmp_path, monkeypatch):
    from edgedeploy.core.sources import resolve
    from edgedeploy.release.stages import source_fingerprint

    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    src = resolve("reference:sst2")
    assert src.kind == "reference" and src.path is None
    fp = source_fingerprint("reference:sst2")  # the cache key of the model, computed without the model
    assert fp["reference"] == "reference:sst2" and len(fp["key"]) == 64
    assert not (tmp_path / "cache").exists()


def test_manifests_and_results_record_every_option(minilm_artifact):
    export_opts = minilm_artifact.manifest.export.options
    assert set(export_opts) == set(ExportOptions.model_fields)
    from edgedeploy.core.manifest import Manifest

    assert Manifest.model_validate(minilm_artifact.manifest).source.kind == "huggingface"


def test_a_manifest_with_wrong_types_is_refused(minilm_artifact, tmp_path):
    import shutil

    from edgedeploy.core.artifact import MANIFEST
    from edgedeploy.core.atomic import write_json_atomic

    bad = tmp_path / "bad"
    shutil.copytree(minilm_artifact.path, bad)
    m = json.loads((bad / MANIFEST).read_text())
    m["opset"], m["inputs"] = "seventeen", "none"
    write_json_atomic(bad / MANIFEST, m)
    line = one_line_error(cli("verify", bad, check=2))
    assert "manifest does not match its schema" in line and "opset" in line and "inputs" in line


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"\xff\xfe\x00garbage\x80", "not a text file"),
        (b"source: [unclosed\n", "not valid YAML"),
        (b"- just\n- a list\n", "expected a mapping"),
        (b"source: minilm-l6\n" + b"# " + b"x" * (1 << 20) + b"\n", "too large for a recipe"),
    ],
)
def test_hostile_recipe_files_exit_2_and_create_nothing(tmp_path, content, expected):
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(content)
    run_dir = tmp_path / "run"
    assert expected in one_line_error(cli("run", recipe, "--run-dir", run_dir, check=2))
    assert not run_dir.exists()


def test_a_set_value_is_data_never_a_python_object(tmp_path):
    recipe = write(tmp_path, "source: minilm-l6\nvariants:\n  a: {method: dynamic}\ntargets:\n  - name: local\n")
    marker = tmp_path / "pwned"
    line = one_line_error(
        cli("run", recipe, "--set", f"name=!!python/object/apply:os.system ['touch {marker}']", "--run-dir", tmp_path / "r", check=2)
    )
    assert "--set name: not valid YAML" in line
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_report_on_a_run_dir_with_a_foreign_recipe_json(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.json").write_text('{"source": 5, "variants": []}')
    assert "recipe.json: not a recipe this version can read" in one_line_error(cli("report", run_dir, check=2))
    (run_dir / "recipe.json").write_bytes(b"\x80\x81 not json")
    assert "recipe.json: not readable JSON" in one_line_error(cli("report", run_dir, check=2))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(text=st.text(max_size=400))
def test_the_recipe_loader_only_ever_raises_bad_input(tmp_path_factory, text):
    """Arbitrary text as a recipe: a RecipeError/BadInput or a recipe, never another exception."""
    from edgedeploy.core.errors import BadInput
    from edgedeploy.release.recipe import load

    recipe = tmp_path_factory.mktemp("fuzz") / "r.yaml"
    recipe.write_text("source: minilm-l6\nvariants:\n  a: {method: dynamic}\ntargets:\n  - name: local\n" + text)
    try:
        load(recipe)
    except BadInput:
        pass
