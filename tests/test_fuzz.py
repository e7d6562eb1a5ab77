"""Property tests for every parser of untrusted bytes: manifest, recipe YAML, --set, TSV/CSV/JSONL,
.npz, inventory, profile JSON and the device's results.json. Each example asserts the documented
error type (exit 2) or a clean result, never another exception, and that nothing was written.
`make test` runs them with a fixed seed (the "ci" hypothesis profile); `make fuzz` runs them long."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedeploy.core.errors import BadInput
from edgedeploy.runtimes.errors import ShapeError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_json(draw, valid):
    """``valid`` with one value somewhere replaced by arbitrary JSON, or a key dropped."""
    doc = json.loads(json.dumps(valid))
    node, path = doc, []
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return draw(JSON)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON)
    return doc


@st.composite
def mutated_bytes(draw, valid: bytes):
    """``valid`` truncated, with bytes flipped or inserted, or arbitrary bytes."""
    how = draw(st.sampled_from(["truncate", "flip", "insert", "random"]))
    if how == "random" or not valid:
        return draw(st.binary(max_size=300))
    at = draw(st.integers(0, len(valid) - 1))
    if how == "truncate":
        return valid[:at]
    if how == "flip":
        return valid[:at] + bytes([valid[at] ^ draw(st.integers(1, 255))]) + valid[at + 1 :]
    return valid[:at] + draw(st.binary(min_size=1, max_size=40)) + valid[at:]


class Sandbox:
    """A fresh directory per example, and a check that the parser wrote nothing anywhere in it."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="edgedeploy-fuzz-"))

    def __enter__(self):
        return self

    def snapshot(self):
        self.before = sorted((p.relative_to(self.root).as_posix(), p.stat().st_size) for p in self.root.rglob("*"))

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                after = sorted((p.relative_to(self.root).as_posix(), p.stat().st_size) for p in self.root.rglob("*"))
                assert after == self.before, "the parser wrote or changed files"
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
        return False


def parses_or_refuses(fn, *errors):
    try:
        return fn()
    except (BadInput, *errors):
        return None


# ---- the artifact manifest ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    from edgedeploy.export import export

    return export(None, tmp_path_factory.mktemp("fz") / "mlp", factory="factories:tiny_mlp", input=("x:float32:batch,64",))


def _manifest_case(artifact, manifest_bytes):
    from edgedeploy.core.artifact import MANIFEST, Artifact

    with Sandbox() as box:
        d = box.root / "a"
        shutil.copytree(artifact.path, d)
        (d / MANIFEST).write_bytes(manifest_bytes)
        box.snapshot()
        parses_or_refuses(lambda: Artifact.load(d))


def test_fuzz_manifest_json(artifact):
    from edgedeploy.core.artifact import MANIFEST

    valid = json.loads((artifact.path / MANIFEST).read_text())

    @given(doc=mutated_json(valid))
    def run(doc):
        _manifest_case(artifact, json.dumps(doc).encode())

    run()


def test_fuzz_manifest_bytes(artifact):
    from edgedeploy.core.artifact import MANIFEST

    @given(raw=mutated_bytes((artifact.path / MANIFEST).read_bytes()))
    def run(raw):
        _manifest_case(artifact, raw)

    run()


# ---- recipes and --set ------------------------------------------------------------------------------

RECIPE = b"source: minilm-l6\nvariants:\n  int8: {method: dynamic, profile: rpi4}\ntargets:\n  - {name: local, shape: 'batch=1,sequence=16'}\nbudgets: {max_size_mb: 30}\n"


@given(raw=mutated_bytes(RECIPE))
def test_fuzz_recipe_bytes(raw):
    from edgedeploy.release.recipe import load

    with Sandbox() as box:
        (box.root / "r.yaml").write_bytes(raw)
        box.snapshot()
        parses_or_refuses(lambda: load(box.root / "r.yaml"))


@given(key=st.text(max_size=30), value=st.text(max_size=60))
def test_fuzz_set_overrides(key, value):
    from edgedeploy.release.recipe import load

    with Sandbox() as box:
        (box.root / "r.yaml").write_bytes(RECIPE)
        box.snapshot()
        parses_or_refuses(lambda: load(box.root / "r.yaml", overrides=(f"{key}={value}",)))


# ---- data files ------------------------------------------------------------------------------------

DATA = {
    "tsv": b'text\tlabel\nit is good\t1\na "quoted\ttab" one\t0\n',
    "csv": b'text,label\n"a, b",1\nplain,0\n',
    "jsonl": b'{"text": "fine", "label": 1}\n{"text": "also", "label": 0}\n',
}


@pytest.mark.parametrize("fmt", sorted(DATA))
def test_fuzz_data_files(fmt):
    from edgedeploy.data.datasets import iter_rows

    @given(raw=mutated_bytes(DATA[fmt]))
    def run(raw):
        with Sandbox() as box:
            f = box.root / f"d.{fmt}"
            f.write_bytes(raw)
            box.snapshot()
            rows = parses_or_refuses(lambda: list(iter_rows(f, ("text",))))
            assert rows is None or all(isinstance(r, dict) and r.get("text") is not None for r in rows)

    run()


# ---- .npz inputs ------------------------------------------------------------------------------------


def _npz_bytes(**arrays) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


SIGNATURE = [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}, {"name": "m", "dtype": "int64", "shape": ["batch", 4]}]


def test_fuzz_npz():
    import numpy as np

    from edgedeploy.runtimes.inputs import load_npz

    valid = _npz_bytes(x=np.ones((2, 4), np.float32), m=np.ones((2, 4), np.int64))

    arrays = st.sampled_from(
        [
            np.ones((2, 4), np.float32),
            np.ones((3, 5), np.float32),
            np.array(["a", "b"]),
            np.array([{"a": 1}], dtype=object),
            np.zeros((0, 4)),
            np.ones((2, 4, 1)),
            np.array(1.5),
            np.ones((1, 4), np.complex64),
        ]
    )

    @given(raw=mutated_bytes(valid) | st.builds(lambda a, b: _npz_bytes(x=a, m=b), arrays, arrays))
    def run(raw):
        with Sandbox() as box:
            f = box.root / "in.npz"
            f.write_bytes(raw)
            box.snapshot()
            feeds = parses_or_refuses(lambda: load_npz(str(f), SIGNATURE), ShapeError)
            if feeds is not None:
                assert feeds["x"].dtype == np.float32 and feeds["x"].shape[0] == feeds["m"].shape[0]

    run()


# ---- inventories and profiles ---------------------------------------------------------------------

INVENTORIES = {
    "edgedeploy": b"hosts:\n  - host: pi@10.0.0.5:2222\n    profile: rpi4\n  - pi@raspberrypi.local\n",
    "ansible-ini": b"[pis]\npi1 ansible_host=10.0.0.5 ansible_port=2222\npi2 ansible_user=pi\n[pis:vars]\nprofile=rpi4\n[all:children]\npis\n",
    "ansible-yaml": b"all:\n  children:\n    pis:\n      vars: {profile: rpi4}\n      hosts:\n        pi1: {ansible_host: 10.0.0.5, ansible_port: 2222}\n",
}


@pytest.mark.parametrize("kind", sorted(INVENTORIES))
def test_fuzz_inventory(kind):
    from edgedeploy.device.fleet import entries

    @given(raw=mutated_bytes(INVENTORIES[kind]), limit=st.none() | st.sampled_from(["pis", "pi1", "pi*", "nope", "pis:pi2"]))
    def run(raw, limit):
        with Sandbox() as box:
            (box.root / "hosts").write_bytes(raw)
            box.snapshot()
            out = parses_or_refuses(lambda: entries((), box.root / "hosts", limit))
            assert out is None or all(isinstance(e["host"], str) for e in out)

    run()


def test_fuzz_profile_json():
    from edgedeploy.device.profiles import _dirs
    from edgedeploy.device.profiles import load as load_profile

    valid = json.loads((_dirs()[-1] / "rpi4.json").read_text())

    @given(doc=mutated_json(valid))
    def run(doc):
        with Sandbox() as box:
            (box.root / "p.json").write_text(json.dumps(doc))
            box.snapshot()
            parses_or_refuses(lambda: load_profile(str(box.root / "p.json")))

    run()


# ---- the device's results.json ----------------------------------------------------------------------


def test_fuzz_device_results(artifact):
    from edgedeploy.bench import bench
    from edgedeploy.device import results

    doc = bench([artifact.path], shape="batch=1", iterations=5, warmup=0)
    valid = {k: doc[k] for k in ("schema", "scenario", "interleaved", "settings", "profile", "results", "environment", "measured")}
    names = [r["name"] for r in valid["results"]]
    results.parse(json.dumps(valid).encode(), "fuzz", names)  # the real document parses

    @given(raw=st.builds(lambda d: json.dumps(d).encode(), mutated_json(valid)) | mutated_bytes(json.dumps(valid).encode()))
    def run(raw):
        out = parses_or_refuses(lambda: results.parse(raw, "fuzz", names))
        assert out is None or [r["name"] for r in out["results"]] == names

    run()


# ---- numeric settings: any value from any source is accepted or refused (exit 2), never a crash ----

NUMBERS = (
    st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 1024, 1025, 10**9, 10**18, 2**63, float("nan"), float("inf"), True, "8", None])
)


def test_fuzz_numeric_ranges_from_every_source(tiny_onnx):
    """A flag (typed options), a profile, a job file: each numeric setting given any value is
    either accepted within its declared range or refused naming it, before any work."""
    from edgedeploy.bench import BenchOptions
    from edgedeploy.core.options import coerce
    from edgedeploy.device.profiles import RANGES, _dirs
    from edgedeploy.device.profiles import load as load_profile
    from edgedeploy.runtimes import job
    from edgedeploy.runtimes.errors import JobError
    from edgedeploy.runtimes.limits import max_threads

    valid = json.loads((_dirs()[-1] / "rpi4.json").read_text())
    flags = [n for n, f in BenchOptions.model_fields.items() if f.annotation in (int, float, int | None, float | None)]
    assert {"threads", "iterations", "concurrency", "qps", "duration"} <= set(flags)

    @given(source=st.sampled_from(["flag", "profile", "job"]), pick=st.integers(0, 100), value=NUMBERS)
    def run(source, pick, value):
        if source == "flag":
            field = flags[pick % len(flags)]
            try:
                opts = coerce(BenchOptions, {field: value}, "bench")
            except BadInput as exc:
                assert field in str(exc)
                return
            got = getattr(opts, field)
            if field == "threads" and got is not None:
                assert 1 <= got <= 1024
        elif source == "profile":
            section, key = sorted(RANGES)[pick % len(RANGES)]
            doc = json.loads(json.dumps(valid))
            doc[section][key] = value
            with Sandbox() as box:
                (box.root / "p.json").write_text(json.dumps(doc))
                box.snapshot()
                try:
                    prof = load_profile(str(box.root / "p.json"))
                except BadInput as exc:
                    assert f"{section}.{key}" in str(exc) or "p.json" in str(exc)
                    return
            v = prof[section][key]
            assert v == v and v not in (float("inf"), float("-inf"))  # finite
            if section == "run":
                assert 0 <= v <= max_threads(prof["target"]["cores"])
        else:
            key = ("intra_op_threads", "inter_op_threads", "iterations", "concurrency", "warmup")[pick % 5]
            j = {"models": [{"name": "t", "path": str(tiny_onnx)}], "profile": {"name": "p", "run": {}}}
            if key.endswith("threads"):
                j["profile"]["run"][key] = value
            else:
                j[key] = value
            try:
                out = job.normalize(j)
            except JobError as exc:
                assert key in str(exc)
                return
            if key.endswith("threads"):
                assert 0 <= out["profile"]["run"][key] <= max_threads()

    run()
