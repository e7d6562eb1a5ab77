"""The CLI contract: --version, --help on every registered command, fast --help."""

import subprocess
import sys
import time

import pytest
from conftest import cli, one_line_error

from edgedeploy import __version__
from edgedeploy.cli.main import COMMANDS


def test_version():
    assert cli("--version", check=0).stdout.strip().endswith(__version__)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_on_every_command(name):
    out = cli(name, "--help", check=0).stdout
    assert out.startswith(f"Usage: edgedeploy {name}")
    if name == "profiles":
        for sub in ("list", "show"):
            assert cli(name, sub, "--help", check=0).stdout.startswith(f"Usage: edgedeploy profiles {sub}")
    elif name not in ("doctor", "schema"):  # schema prints JSON already
        assert "--json" in out


def test_top_level_help_is_fast_and_lists_commands():
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from edgedeploy.cli.main import main; main(['--help'])"], capture_output=True, text=True
    )
    assert time.perf_counter() - t0 < 5
    for name in COMMANDS:
        assert name in proc.stdout
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, edgedeploy.cli.main; print(sorted(m for m in ('torch','onnx','onnxruntime','transformers') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
    )
    assert heavy.stdout.strip() == "[]"


def test_usage_error_exit_2():
    proc = cli("export", check=2)
    assert "Traceback" not in proc.stderr


def test_quiet_and_verbose_work_before_and_after_the_command(tmp_path):
    out = tmp_path / "a"
    loud = cli("export", "--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64", "-o", out, check=0)
    assert "exporting" in loud.stderr
    for before, after in ((["-q"], []), ([], ["-q"])):
        proc = cli(*before, "export", "--factory", "factories:tiny_mlp", "--input", "x:float32:batch,64", "-o", out, "--force", *after, check=0)
        assert "exporting" not in proc.stderr, (before, after)
    assert cli("verify", out, "-v", check=0).stdout.startswith(str(out))


def test_every_option_has_help_text():
    import click

    from edgedeploy.cli.main import COMMANDS
    from edgedeploy.cli.main import cli as group

    ctx = click.Context(group)
    missing = []

    def walk(cmd, name):
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, sub), f"{name} {sub}")
            return
        missing.extend(f"{name} {p.opts[-1]}" for p in cmd.get_params(ctx) if isinstance(p, click.Option) and not p.hidden and not p.help)

    for name in COMMANDS:
        walk(group.get_command(ctx, name), name)
    assert missing == []


def test_evaluation_data_is_data_in_every_command():
    import click

    from edgedeploy.cli.main import cli as group

    ctx = click.Context(group)
    for name in ("export", "quantize", "eval", "prune", "distill"):
        params = {p.name: p for p in group.get_command(ctx, name).get_params(ctx)}
        assert params["eval_data"].opts == ["--data"] and not params["eval_data"].hidden, name
        assert not any(getattr(p, "hidden", False) for p in params.values()), name  # no aliases for names never released


def test_the_old_compress_data_key_is_refused_not_read_as_evaluation_text():
    from edgedeploy.compress.options import PruneOptions
    from edgedeploy.core.errors import BadInput
    from edgedeploy.core.options import coerce

    with pytest.raises(BadInput, match="training text is train_data"):
        coerce(PruneOptions, {"data": "train.tsv", "heads": "0.2"}, "compress.small")


def test_a_missing_onnxruntime_is_exit_3_with_the_extra_to_install(tmp_path, tiny_onnx):
    """onnxruntime is an extra now; its absence is emulated by a package that fails to import
    exactly as a missing one does (this environment has onnxruntime installed)."""
    fake = tmp_path / "shadow" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n")
    proc = cli("bench", tiny_onnx, "--shape", "batch=1", env={"PYTHONPATH": str(fake.parent)}, check=3)
    assert "onnxruntime is not installed" in one_line_error(proc) and "edgedeploy[cpu]" in proc.stderr
