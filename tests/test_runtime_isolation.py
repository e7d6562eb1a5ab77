"""The runtime must run on a target that has only numpy and onnxruntime.

Two proofs that cannot be fooled: (1) a fresh virtual environment holding nothing but
numpy and onnxruntime runs the device-side zipapp end to end, and importing torch there
fails; (2) in the full development environment, running the harness loads none of
torch, transformers, optimum or onnx (checked in sys.modules at exit).
"""

import json
import subprocess
import sys
import textwrap
import venv
from importlib.metadata import version

import pytest
from conftest import ROOT

FORBIDDEN = ("torch", "transformers", "optimum", "onnx", "onnxscript", "click")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    return make_bare_venv(tmp_path_factory.mktemp("bare-venv"))


def make_bare_venv(d):
    """A venv holding numpy and onnxruntime (at this host's versions) and nothing else."""
    venv.EnvBuilder(with_pip=False).create(d)
    py = d / "bin" / "python"
    pins = [f"numpy=={version('numpy')}", f"onnxruntime=={version('onnxruntime')}"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            *pins,
            f"flatbuffers=={version('flatbuffers')}",
            f"protobuf=={version('protobuf')}",
            f"packaging=={version('packaging')}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return py


def test_zipapp_runs_in_a_numpy_onnxruntime_only_venv(bare_python, tiny_onnx, tmp_path):
    from edgedeploy.device.runtime_bundle import build_zipapp

    pyz = build_zipapp(tmp_path / "edgedeploy-runtime.pyz")
    listed = subprocess.run(
        [str(bare_python), "-c", "import importlib.util as u; print([m for m in ('torch','transformers','onnx','optimum') if u.find_spec(m)])"],
        capture_output=True,
        text=True,
    )
    assert listed.stdout.strip() == "[]", "the bare venv must not contain torch/transformers/onnx/optimum"
    chk = subprocess.run([str(bare_python), str(pyz), "check"], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stderr
    out = tmp_path / "r.json"
    run = subprocess.run(
        [str(bare_python), str(pyz), "bench", str(tiny_onnx), "--shape", "batch=2", "--iterations", "30", "--quiet", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(out.read_text())
    assert doc["results"][0]["samples"] == 30 and doc["environment"]["onnxruntime"] == version("onnxruntime")


def test_runtime_wheel_installs_without_torch_and_its_console_script_benches(tmp_path, tiny_onnx):
    """`make dist`'s runtime wheel: numpy and onnxruntime as its only requirements, and
    edgedeploy-runtime bench model.onnx runs in a venv without torch."""
    import zipfile

    from edgedeploy.device.runtime_bundle import runtime_wheel

    wheel = runtime_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("edgedeploy_runtime-0.1.0.dist-info/METADATA").decode()
        names = zf.namelist()
    requires = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist")]
    assert requires == ["Requires-Dist: numpy", "Requires-Dist: onnxruntime", 'Requires-Dist: mlcommons-loadgen; extra == "loadgen"']
    assert "Metadata-Version: 2.4" in meta and "Requires-Python: >=3.8" in meta  # JetPack 5 (3.8) and 6 (3.10)
    assert "edgedeploy/__init__.py" not in names  # a namespace: it never shadows a full edgedeploy install
    assert {n.split("/")[-1] for n in names if n.startswith("edgedeploy/runtimes/")} == {f.name for f in (ROOT / "runtimes").glob("*.py")}
    py = make_bare_venv(tmp_path / "venv")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index", str(wheel)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr  # --no-index: its requirements are already there, nothing else is fetched
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0
    out = tmp_path / "r.json"
    script = py.parent / "edgedeploy-runtime"
    run = subprocess.run(
        [str(script), "bench", str(tiny_onnx), "--shape", "batch=1", "--iterations", "20", "--quiet", "-o", str(out)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["results"][0]["samples"] == 20


def test_zipapp_reports_missing_onnxruntime_with_exit_3(tmp_path):
    from edgedeploy.device.runtime_bundle import build_zipapp

    d = tmp_path / "empty-venv"
    venv.EnvBuilder(with_pip=False).create(d)
    pyz = build_zipapp(tmp_path / "rt.pyz")
    proc = subprocess.run([str(d / "bin" / "python"), str(pyz), "check"], capture_output=True, text=True)
    assert proc.returncode == 3
    assert "missing numpy, onnxruntime" in proc.stderr and "pip install" in proc.stderr


def test_running_the_harness_imports_no_host_libraries(tiny_onnx, tmp_path):
    probe = textwrap.dedent(f"""
        import atexit, json, runpy, sys
        forbidden = {FORBIDDEN!r}
        def report():
            loaded = sorted(m for m in sys.modules if m.split('.')[0] in forbidden)
            with open({str(tmp_path / "mods.json")!r}, 'w') as fh:
                json.dump(loaded, fh)
        atexit.register(report)
        sys.argv = ['x', 'bench', {str(tiny_onnx)!r}, '--shape', 'batch=1', '--iterations', '10', '--quiet']
        runpy.run_module('edgedeploy.runtimes', run_name='__main__')
    """)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "mods.json").read_text()) == []


def test_the_library_wheel_carries_ranges_and_onnxruntime_only_as_extras(tmp_path):
    """`make dist`'s library wheel, built the way it builds it: no exact pin on anything (a user's
    environment keeps its torch), and onnxruntime only through the cpu/gpu extras."""
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("edgedeploy-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = next(zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    reqs = [ln.split(":", 1)[1].strip() for ln in meta.splitlines() if ln.startswith("Requires-Dist")]
    assert not [r for r in reqs if "==" in r.split(";")[0]], reqs
    torch = [r for r in reqs if r.startswith("torch")]
    assert torch and all(">=" in r for r in torch)
    ort = [r for r in reqs if r.startswith("onnxruntime")]
    assert ort and all("extra ==" in r for r in ort), ort
