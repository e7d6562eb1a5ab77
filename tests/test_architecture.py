"""The package's shape: no import cycles (counting lazy imports inside functions too), no
module over 400 lines, and a CLI whose --help imports no torch, transformers or onnx."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGES = {"edgedeploy": ROOT / "edgedeploy", "edgedeploy.exporters": ROOT / "exporters", "edgedeploy.runtimes": ROOT / "runtimes"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for pkg, root in PACKAGES.items():
        for f in root.rglob("*.py"):
            rel = f.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if (name.startswith("edgedeploy.exporters") and pkg == "edgedeploy") or (name.startswith("edgedeploy.runtimes") and pkg == "edgedeploy"):
                continue
            out[name] = f
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    g = {}
    for name, path in mods.items():
        deps = set()
        for m in imports(name, path, known):
            parts = m.split(".")
            # importing a.b.c runs the __init__ of a and a.b first: those are edges too
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known}
        g[name] = deps
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """A package's __init__ importing its own modules is not a cycle unless a module imports the package back."""
    g = graph()
    for name in g:  # a module importing its own package's __init__ only for re-exports is still an edge: keep it honest
        g[name] = {d for d in g[name] if not name.startswith(d + ".")}
    assert cycles(g) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_cli_help_imports_no_heavy_framework():
    code = (
        "import sys; from edgedeploy.cli.main import cli, COMMANDS; import importlib\n"
        "[importlib.import_module('edgedeploy.cli.' + m) for m in COMMANDS.values()]\n"
        "print(sorted(m for m in ('torch', 'transformers', 'onnx', 'optimum') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# Internal modules whose import pulls onnx (onnxruntime.quantization imports it): the only
# internal imports allowed inside functions; every other internal import is at the top.
LAZY_INTERNAL = {"edgedeploy.quantize.calibration"}


def test_internal_imports_are_at_the_top():
    lazy = []
    for name, path in modules().items():
        if name.startswith("edgedeploy.runtimes"):
            continue  # the device harness checks for numpy before importing what needs it
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgedeploy") and node.module not in LAZY_INTERNAL:
                        lazy.append(f"{name}:{node.lineno} {node.module}")
    assert lazy == []


def test_metadata_has_ranges_and_make_setup_has_the_pins():
    """Users install edgedeploy beside their own torch: no exact pins in the metadata; the
    versions the suite runs with are pinned: constraints.txt (the current stack, transformers 5,
    which make setup uses) and constraints-legacy.txt (transformers 4 with optimum-onnx, which
    make setup-legacy uses). The metadata's ranges admit both."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"]
    assert not [d for d in deps if "==" in d], deps
    assert not [d for d in deps if d.startswith("onnxruntime")], "onnxruntime is an extra: cpu or gpu, one per flavour"
    assert meta["project"]["optional-dependencies"]["cpu"] == ["onnxruntime>=1.20"]
    from packaging.requirements import Requirement

    def pins(name):
        return {ln.split("==")[0]: ln.split("==")[1] for ln in (ROOT / name).read_text().splitlines() if "==" in ln}

    current, legacy = pins("constraints.txt"), pins("constraints-legacy.txt")
    assert current["torch"] == legacy["torch"] == "2.13.0" and current["transformers"].startswith("5.") and "optimum-onnx" not in current
    assert legacy["transformers"].startswith("4.") and "optimum-onnx" in legacy
    extras = meta["project"]["optional-dependencies"]
    for requirement, stack in [(deps, current), (deps, legacy), (extras["export"], current), (extras["export-legacy"], legacy)]:
        for req in map(Requirement, requirement):
            if req.name in stack:
                assert req.specifier.contains(stack[req.name]), (str(req), stack[req.name])
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "-c constraints-legacy.txt" in makefile
    assert (ROOT / "LICENSE").read_text().startswith(" " * 33 + "Apache License")


def test_every_cli_module_is_a_command_named_for_it():
    """cli/ holds one module per command, named <command>_cmd.py, plus main and common: helpers
    and orchestration live in the library."""
    from edgedeploy.cli.main import COMMANDS

    modules = {p.stem for p in (ROOT / "edgedeploy" / "cli").glob("*.py")} - {"__init__", "main", "common"}
    assert modules == {f"{name}_cmd" for name in COMMANDS}
    for name, module in COMMANDS.items():
        assert module == f"{name}_cmd"


def test_no_library_function_is_over_60_lines():
    """Long pipeline functions are split along their steps (validate, stage, run, manifest,
    publish; core/derive.py holds what deriving an artifact shares): the test lists any over 60."""
    found = {}
    for root in ("edgedeploy", "exporters", "runtimes"):
        for f in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                    found[f"{f.relative_to(ROOT).as_posix()}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert found == {}


def test_uv_installs_from_the_sources_pip_is_configured_with():
    """make setup installs with uv, which reads no pip.conf: scripts/pip_sources.py turns pip's
    configured sources (env values and files, which may repeat each other) into uv flags."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pip_sources", ROOT / "scripts" / "pip_sources.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    listed = [
        ":env:.find-links='/opt/wheels'",
        ":env:.default-timeout='180'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.extra-index-url='file:///opt/pypi/simple file:///opt/mirror/simple'",
        "global.find-links='/opt/wheels'",
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
    ]
    assert mod.uv_args(listed) == [
        "--find-links",
        "/opt/wheels",
        "--constraint",
        "/etc/xdg/pip/constraints.txt",
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--extra-index-url",
        "file:///opt/mirror/simple",
    ]
    assert mod.uv_args([]) == []
    assert "$(shell $(PYTHON) scripts/pip_sources.py)" in (ROOT / "Makefile").read_text()


def test_measuring_code_never_branches_on_where_it_runs():
    """bench, tune and recipes hand a job to a ``Target`` (targets.py: local or SSH); where it
    runs is the target's business, so no condition in the code that measures tests for a host or
    a remote (recipe validation, release/checks.py, may still say an SSH target needs a profile)."""
    import re

    names = ["bench.py", "bench_fleet.py", "tune/search.py", "tune/space.py", "release/stages.py", "release/tune_stage.py", "release/run.py"]
    files = [ROOT / "edgedeploy" / n for n in names]
    branches = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.If, ast.IfExp)) and re.search(r"\b(host|hosts|remote|local)\b", ast.unparse(node.test)):
                branches.append(f"{f.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.test)}")
    assert branches == []


def _manifest_dict_uses(source: str) -> list[str]:
    """String-key reads of a manifest (``x.manifest["k"]``, ``manifest.get("k")``) and manifests
    built as dict literals (a dict with the manifest's ``lineage`` key or its ``kind``)."""

    def is_manifest(expr) -> bool:
        return ast.unparse(expr).split(".")[-1] == "manifest"

    found = []
    for node in ast.walk(ast.parse(source)):
        keys = {k.value for k in getattr(node, "keys", []) if isinstance(k, ast.Constant)}
        values = {v.value for v in getattr(node, "values", []) if isinstance(v, ast.Constant) and isinstance(v.value, str)}
        read = (isinstance(node, ast.Subscript) and is_manifest(node.value)) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "items")
            and is_manifest(node.func.value)
        )
        literal = isinstance(node, ast.Dict) and ("lineage" in keys or ("kind" in keys and "edgedeploy-artifact" in values))
        if read or literal:
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_the_manifest_is_read_and_built_as_the_typed_model_outside_core():
    """``Artifact.manifest`` is ``core.manifest.Manifest``: every step builds one and every reader
    reads attributes; only core/ (which loads and writes edgedeploy.json) sees it as JSON."""
    uses = [
        f"{f.relative_to(ROOT)}:{use}"
        for f in sorted((ROOT / "edgedeploy").rglob("*.py"))
        if "core" not in f.relative_to(ROOT / "edgedeploy").parts
        for use in _manifest_dict_uses(f.read_text())
    ]
    assert uses == []


def test_the_manifest_check_finds_dict_reads_and_literals():
    snippet = (
        'a = art.manifest["source"]\nb = self.parent.manifest.get("run")\nc = {"kind": "edgedeploy-artifact", "source": {}}\nd = {"lineage": None}\n'
    )
    assert [u.split(":")[0] for u in _manifest_dict_uses(snippet)] == ["1", "2", "3", "4"]
    assert _manifest_dict_uses("a = art.manifest.source.kind\nb = doc['kind']\n") == []
