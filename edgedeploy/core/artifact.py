"""The artifact: a directory with ``model.onnx`` (+ external data), tokenizer/config
files when the source had them, and ``edgedeploy.json``, the manifest, written last.

``Artifact.load`` refuses a directory without a manifest, re-hashes every file and
checks ONNX external-data locations before anything loads the model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from edgedeploy import __version__
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput
from edgedeploy.core.manifest import SCHEMA_VERSION, Manifest
from edgedeploy.core.options import describe_error

MANIFEST = "edgedeploy.json"
MODEL = "model.onnx"
REQUIRED_KEYS = ("schema_version", "source", "files", "opset", "inputs", "outputs", "size_bytes")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256(path) -> str:
    """``sha256_file`` remembered per (path, size, mtime): stage keys hash the same data files many times."""
    st = Path(path).stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def is_artifact(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def tool_versions() -> dict:
    import importlib.metadata as md

    out = {"edgedeploy": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Artifact:
    path: Path
    manifest: dict = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.get("model_file", MODEL)

    @property
    def digest(self) -> str:
        """Content hash of the artifact: sha256 over the sorted file hashes."""
        return digest_of_files(self.manifest["files"])

    @property
    def inputs(self) -> list[dict]:
        return self.manifest["inputs"]

    @classmethod
    def load(cls, path, verify: bool = True) -> Artifact:
        path = Path(path)
        if not path.exists():
            raise BadInput(f"{path}: no such artifact directory")
        if not path.is_dir():
            raise BadInput(f"{path}: is a file; an artifact is a directory made by 'edgedeploy export'")
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise BadInput(f"{path}: not an edgedeploy artifact (no {MANIFEST}); it may be incomplete or not made by edgedeploy")
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"{mpath}: manifest is not valid JSON ({exc})") from None
        missing = [k for k in REQUIRED_KEYS if k not in manifest] if isinstance(manifest, dict) else list(REQUIRED_KEYS)
        if missing:
            raise BadInput(f"{mpath}: manifest lacks {', '.join(missing)}")
        if isinstance(manifest["schema_version"], int) and manifest["schema_version"] > SCHEMA_VERSION:
            raise BadInput(f"{mpath}: schema_version {manifest['schema_version']} is newer than this edgedeploy understands; upgrade edgedeploy")
        _check_manifest(mpath, manifest)
        art = cls(path, manifest)
        if verify:
            problems = art.verify()
            if problems:
                raise BadInput(
                    f"{path}: checksum verification failed: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                )
            check_external_data(art.model_path)
        return art

    def verify(self) -> list[str]:
        """Re-hash every file; return a list of problems (empty when intact)."""
        problems = []
        root = self.path.resolve()
        for name, meta in sorted(self.manifest["files"].items()):
            f = self.path / name
            if not _inside(root, f):
                problems.append(f"{name} points outside the artifact")
            elif not f.is_file():
                problems.append(f"{name} is missing")
            elif f.stat().st_size != meta["size"]:
                problems.append(f"{name} has {f.stat().st_size} bytes, manifest says {meta['size']}")
            elif sha256_file(f) != meta["sha256"]:
                problems.append(f"{name} sha256 differs from the manifest")
        return problems


def _check_manifest(mpath: Path, manifest: dict) -> None:
    """The manifest's types against ``Manifest`` (``edgedeploy schema manifest``); every problem at once."""
    try:
        Manifest.model_validate(manifest)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {describe_error(e)}" for e in exc.errors()]
        raise BadInput(
            f"{mpath}: manifest does not match its schema: "
            + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        ) from None


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def digest_of_files(files: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]['sha256']}\n".encode())
    return h.hexdigest()


def hash_directory(root: Path) -> dict:
    files = {}
    for f in sorted(Path(root).rglob("*")):
        if f.is_file() and f.name != MANIFEST:
            rel = f.relative_to(root).as_posix()
            files[rel] = {"sha256": sha256_file(f), "size": f.stat().st_size}
    return files


def check_external_data(model_path: Path) -> None:
    """Refuse external-data locations that are absolute, climb out with '..', or
    resolve (through symlinks) outside the model's directory."""
    import onnx

    root = Path(model_path).parent.resolve()
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError/OSError variants
        raise BadInput(f"{model_path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    from onnx.external_data_helper import _get_all_tensors

    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if not loc or os.path.isabs(loc) or ".." in Path(loc).parts:
            raise BadInput(f"{model_path}: tensor {tensor.name!r} has unsafe external-data location {loc!r}")
        if not _inside(root, root / loc):
            raise BadInput(f"{model_path}: external data {loc!r} of tensor {tensor.name!r} resolves outside the artifact")


def finalize_manifest(stage: Path, manifest: dict) -> dict:
    """Hash every file in the staging dir and write the manifest last."""
    manifest = dict(manifest)
    manifest["schema_version"] = SCHEMA_VERSION
    manifest["files"] = hash_directory(stage)
    manifest["size_bytes"] = sum(m["size"] for m in manifest["files"].values())
    manifest.setdefault("created", utc_now())
    manifest.setdefault("tool_versions", tool_versions())
    manifest["digest"] = digest_of_files(manifest["files"])
    write_json_atomic(stage / MANIFEST, manifest)
    return manifest


def onnx_signature(model_path: Path) -> tuple[list[dict], list[dict], int, int]:
    """Inputs/outputs with symbolic dims, the default-domain opset and parameter count."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)

    def describe(values):
        out = []
        for v in values:
            tt = v.type.tensor_type
            dims = []
            for d in tt.shape.dim:
                dims.append(d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?"))
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name, "shape": dims})
        return out

    init_names = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    params = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        params += n
    return describe(inputs), describe(model.graph.output), opset, params
