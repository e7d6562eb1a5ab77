"""The library wheel as users install it: built from this tree, installed into a fresh venv with
the [cpu] extra only (no torch), and run from a directory outside the source tree on an
optimum-style ONNX export directory: schema, tune --help, adopt, quantize, bench, tune, a recipe
through report; export exits 3 naming the [export] extra."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SST2_DEV, cli

pytestmark = pytest.mark.slow

FAST = ("--eval-samples", "8", "--iterations", "10", "--warmup", "2", "--shape", "batch=1,sequence=32")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv holding the built wheel and its [cpu] dependencies (pinned by constraints.txt)."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, ROOT], capture_output=True, text=True, cwd=tmp
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("edgedeploy-*.whl")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", env], check=True)
    py = env / "bin" / "python"
    # The wheel's metadata decides what goes in, whichever installer reads it: uv where `make
    # setup` put it beside this interpreter (2 s here; pip took 20 s), pip otherwise.
    uv = Path(sys.executable).with_name("uv")
    if uv.is_file():
        sources = subprocess.run([sys.executable, ROOT / "scripts" / "pip_sources.py"], capture_output=True, text=True, check=True).stdout.split()
        cmd = [uv, "pip", "install", "-q", "--python", py, "--index-strategy", "unsafe-best-match", *sources]
    else:
        cmd = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    install = subprocess.run([*cmd, "-c", ROOT / "constraints.txt", f"{wheel}[cpu]"], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    return env


def run(venv: Path, *args, cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    proc = subprocess.run([venv / "bin" / "edgedeploy", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert proc.returncode == code, f"exit {proc.returncode} != {code}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def optimum_dir(tmp_path_factory, tiny_classifier_dir):
    """What `optimum-cli export onnx` leaves: model.onnx beside config and tokenizer files."""
    art = tmp_path_factory.mktemp("optimum") / "art"
    cli("export", tiny_classifier_dir, "-o", art, check=0)
    d = art.parent / "optimum-export"
    d.mkdir()
    for f in art.iterdir():
        if f.name != "edgedeploy.json":
            shutil.copy2(f, d / f.name)
    return d


def test_the_wheel_holds_every_package_and_no_torch(venv):
    py = venv / "bin" / "python"
    code = "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('optimum') is None)"
    assert subprocess.run([py, "-c", code], capture_output=True, text=True, cwd="/").stdout.split() == ["True", "True"]
    site = next((venv / "lib").glob("python3*/site-packages")) / "edgedeploy"
    for root in ("edgedeploy", "exporters", "runtimes", "device_profiles"):
        for init in (ROOT / root).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / root)
            installed = site / ("" if root == "edgedeploy" else root) / rel
            assert (installed / "__init__.py").is_file(), f"{installed} is not in the wheel"


def test_the_installed_wheel_works_on_onnx_models_without_torch(venv, optimum_dir, tmp_path):
    work = tmp_path / "outside"  # not the source tree: the installed package, nothing else
    work.mkdir()
    schema = json.loads(run(venv, "schema", "recipe", cwd=work).stdout)
    assert "source" in schema["properties"]
    assert "--methods" in run(venv, "tune", "--help", cwd=work).stdout
    run(venv, "adopt", optimum_dir, "-o", work / "adopted", cwd=work)
    run(venv, "quantize", optimum_dir, "-o", work / "int8", "--method", "dynamic", "--data", SST2_DEV, "--eval-samples", "8", cwd=work)
    doc = json.loads(
        run(venv, "bench", optimum_dir, work / "int8", "--shape", "batch=1,sequence=32", "--iterations", "10", "--json", cwd=work).stdout
    )
    assert [r["name"] for r in doc["results"]][1:] == ["int8"]
    run(venv, "tune", optimum_dir, "-o", work / "tuned", "--methods", "dynamic", "--data", SST2_DEV, "--min-mean-cosine", "0.5", *FAST, cwd=work)
    assert json.loads((work / "tuned" / "tune.json").read_text())["winner"]
    recipe = work / "r.yaml"
    recipe.write_text(
        f"source: {optimum_dir}\nvariants: {{int8: {{method: dynamic}}}}\n"
        "targets: [{name: local, shape: 'batch=1,sequence=32', iterations: 10, warmup: 2}]\n"
        f"data: {{eval: {SST2_DEV}, max_rows: 8}}\n"
    )
    run(venv, "run", recipe, "--run-dir", work / "run", cwd=work)
    run(venv, "report", work / "run", cwd=work)
    assert (work / "run" / "report.html").is_file()
    # what `provision` installs on a device: the runtime wheel, built from the installed package's own metadata
    built = subprocess.run(
        [venv / "bin" / "python", "-m", "edgedeploy.device.runtime_bundle", "--wheel", work], capture_output=True, text=True, cwd=work
    )
    assert built.returncode == 0 and (work / "edgedeploy_runtime-0.1.0-py3-none-any.whl").is_file(), built.stderr[-2000:]
    line = run(venv, "export", optimum_dir, "-o", work / "x", cwd=work, code=3).stderr.strip().splitlines()[-1]
    assert "edgedeploy[export]" in line, line
    assert not (work / "x").exists()
