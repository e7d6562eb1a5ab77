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
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from edgedeploy import __version__
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.bounded import MAX_ONNX_BYTES, check_size, read_bounded
from edgedeploy.core.errors import BadInput
from edgedeploy.core.manifest import SCHEMA_VERSION, FileEntry, Manifest, TensorSpec
from edgedeploy.core.options import describe_error
from edgedeploy.runtimes.inputs import ALIASES

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
    manifest: Manifest
    external_data: list[str] | None = None  # the model's external-data files, once verified
    adopted: bool = False  # a model edgedeploy did not write (core/adopt.py): only its listed files are its own
    name: str = ""

    def __post_init__(self):
        self.name = self.name or Path(self.path).name

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def graph_files(self) -> dict[str, str]:
        """{role: file} of every graph; a single-graph artifact has the one role ``model``."""
        return self.manifest.graph_files

    @property
    def is_seq2seq(self) -> bool:
        return "decoder-with-past" in self.graph_files

    def validated_dims(self) -> dict[str, int]:
        """{symbolic dim: size} from the first validation case, for the dims other than batch and
        sequence (and a decoder's past): what an input generator binds when nobody says."""
        shapes = self.manifest.validation.first_shapes() if self.manifest.validation else {}
        common = {n for names in ALIASES.values() for n in names}
        dims: dict[str, int] = {}
        for spec in self.inputs:
            got = shapes.get(spec.name)
            if not isinstance(got, list) or len(got) != len(spec.shape):
                continue
            for d, v in zip(spec.shape, got):
                if isinstance(d, str) and d not in common and "past" not in d and "+" not in d and type(v) is int and v > 0:
                    dims.setdefault(d, v)
        return dims

    def require_single_graph(self, what: str) -> None:
        """Refuse (exit 2) a step that handles one graph on an artifact of several."""
        if len(self.graph_files) > 1:
            roles = ", ".join(self.graph_files)
            raise BadInput(f"{self.path}: {what} handles single-graph artifacts; this one holds {len(self.graph_files)} graphs ({roles})")

    @property
    def digest(self) -> str:
        """Content hash of the artifact: sha256 over the sorted file hashes."""
        return digest_of_files(self.manifest.files)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.manifest.inputs

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.manifest.inputs]

    def signature(self) -> list[dict]:
        """The model's inputs as the runtime's input generator takes them (name, dtype, shape)."""
        return [i.model_dump(mode="json") for i in self.manifest.inputs]

    @classmethod
    def load(cls, path, verify: bool = True) -> Artifact:
        """Read and check the manifest; with ``verify`` also check that the directory holds
        exactly the listed files, intact, and that the model's external data is listed."""
        path = Path(path)
        if not path.exists():
            raise BadInput(f"{path}: no such artifact directory")
        if not path.is_dir():
            raise BadInput(f"{path}: is a file; an artifact is a directory made by 'edgedeploy export'")
        mpath = path / MANIFEST
        if mpath.is_symlink() or not mpath.is_file():
            raise BadInput(f"{path}: not an edgedeploy artifact (no {MANIFEST}); it may be incomplete or not made by edgedeploy")
        try:
            manifest = json.loads(read_bounded(mpath, MAX_MANIFEST_BYTES, "manifest").decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise BadInput(f"{mpath}: manifest is not valid JSON ({str(exc)[:200]})") from None
        missing = [k for k in REQUIRED_KEYS if k not in manifest] if isinstance(manifest, dict) else list(REQUIRED_KEYS)
        if missing:
            raise BadInput(f"{mpath}: manifest lacks {', '.join(missing)}")
        if isinstance(manifest["schema_version"], int) and manifest["schema_version"] > SCHEMA_VERSION:
            raise BadInput(f"{mpath}: schema_version {manifest['schema_version']} is newer than this edgedeploy understands; upgrade edgedeploy")
        art = cls(path, _check_manifest(mpath, manifest))
        if verify:
            problems = art.verify()
            if problems:
                raise BadInput(f"{path}: verification failed: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        return art

    def verify(self) -> list[str]:
        """Every problem with the directory against its manifest (empty when intact): a file
        missing, changed, unlisted or a link, an empty model, unlisted or unsafe external data."""
        listed = self.manifest.files
        graphs = list(dict.fromkeys(self.graph_files.values()))
        problems = [f"{name}: {why}" for name in sorted({*listed, *graphs}) if (why := unsafe_relative_path(name))]
        if problems:
            return problems
        missing = [g for g in graphs if g not in listed]
        if missing:
            return [f"the manifest does not list its model file {missing[0]}"]
        on_disk, problems = _walk(self.path) if not self.adopted else _listed_on_disk(self.path, listed)
        for name, meta in sorted(listed.items()):
            if name not in on_disk:
                problems.append(f"{name} is missing")
            elif on_disk[name] != meta.size:
                problems.append(f"{name} has {on_disk[name]} bytes, manifest says {meta.size}")
            elif sha256_file(self.path / name) != meta.sha256:
                problems.append(f"{name} checksum (sha256) differs from the manifest")
        problems += [f"{name} is not listed in the manifest; remove it or re-export" for name in sorted(set(on_disk) - set(listed))]
        problems += [f"{g} is empty" for g in graphs if not problems and listed[g].size == 0]
        if not problems:
            extra: list[str] = []
            for g in graphs:
                try:
                    locs = external_data_locations(self.path / g)
                except BadInput as exc:
                    return [str(exc)]
                problems += [f"external data {loc} of {g} is not listed in the manifest" for loc in locs if loc not in listed]
                extra += [loc for loc in locs if loc not in extra]
            self.external_data = extra
        return problems

    def model_files(self) -> list[str]:
        """Every graph file and its external data: what a device needs to run it."""
        graphs = list(dict.fromkeys(self.graph_files.values()))
        if self.external_data is None:
            self.external_data = sorted({loc for g in graphs for loc in external_data_locations(self.path / g)})
        return [*graphs, *self.external_data]


MAX_MANIFEST_BYTES = 16 << 20


def unsafe_relative_path(name) -> str | None:
    """Why ``name`` is not a plain relative path inside an artifact (None when it is)."""
    if not isinstance(name, str) or not name:
        return "not a file name"
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path; a manifest names files inside the artifact"
    if any(p in ("", ".", "..") for p in name.split("/")):
        return "climbs out of the artifact or is not a plain relative path"
    if any(ord(c) < 32 for c in name):
        return "has control characters"
    if name == MANIFEST:
        return "is the manifest itself"
    return None


def _walk(root: Path) -> tuple[dict[str, int], list[str]]:
    """{relative path: size} of the regular files under ``root`` (the manifest aside), without
    following links; links and special files are problems."""
    files, problems = {}, []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            if (base / d).is_symlink():
                problems.append(f"{(base / d).relative_to(root).as_posix()} is a symbolic link; artifacts hold plain files only")
                dirnames.remove(d)
        for name in filenames:
            f = base / name
            rel = f.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            st = os.lstat(f)
            if stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel} is a symbolic link; artifacts hold plain files only")
            elif not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel} is not a regular file")
            else:
                files[rel] = st.st_size
    return files, problems


def _listed_on_disk(root: Path, listed) -> tuple[dict[str, int], list[str]]:
    """Like ``_walk``, for the listed files only (an adopted model's directory holds other things too)."""
    files, problems = {}, []
    for rel in listed:
        try:
            st = os.lstat(root / rel)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            problems.append(f"{rel} is a symbolic link; give the file itself")
        elif stat.S_ISREG(st.st_mode):
            files[rel] = st.st_size
    return files, problems


def _check_manifest(mpath: Path, manifest: dict) -> Manifest:
    """The manifest's types against ``Manifest`` (``edgedeploy schema manifest``); every problem at once."""
    try:
        return Manifest.model_validate(manifest)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {describe_error(e)}" for e in exc.errors()]
        raise BadInput(
            f"{mpath}: manifest does not match its schema: "
            + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        ) from None


def digest_of_files(files: dict[str, FileEntry]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name].sha256}\n".encode())
    return h.hexdigest()


def hash_directory(root: Path) -> dict[str, FileEntry]:
    """sha256 and size of every file a step wrote into its staging dir (links are refused)."""
    sizes, problems = _walk(Path(root))
    if problems:
        raise BadInput(f"{root}: {problems[0]}")
    return hash_files(root, sorted(sizes))


def hash_files(root: Path, names) -> dict[str, FileEntry]:
    """sha256 and size of each named file under ``root``."""
    return {rel: FileEntry(sha256=sha256_file(Path(root) / rel), size=os.path.getsize(Path(root) / rel)) for rel in names}


def external_data_locations(model_path: Path) -> list[str]:
    """The external-data files the model's tensors name, relative to the model; absolute
    locations and ones that climb out with '..' are refused."""
    import onnx

    model = load_graph(model_path)
    from onnx.external_data_helper import _get_all_tensors

    locations = set()
    sizes: dict[str, int | None] = {}
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        if unsafe_relative_path(loc):
            raise BadInput(f"{model_path}: tensor {tensor.name!r} has unsafe external-data location {loc!r}")
        locations.add(loc)
        if loc not in sizes:
            data = model_path.parent / loc
            sizes[loc] = data.stat().st_size if data.is_file() and not data.is_symlink() else None
        _check_extent(model_path, tensor.name, loc, info, sizes[loc])
    return sorted(locations)


def _check_extent(model_path: Path, tensor: str, loc: str, info: dict, size: int | None) -> None:
    """A tensor's external-data ``offset`` and ``length`` are integers that lie inside its data
    file (a missing file is reported by the caller)."""
    try:
        offset, length = int(info.get("offset", 0)), int(info["length"]) if "length" in info else None
    except ValueError:
        raise BadInput(f"{model_path}: tensor {tensor!r} has a non-integer external-data offset or length") from None
    if offset < 0 or (length is not None and length < 0):
        raise BadInput(f"{model_path}: tensor {tensor!r} has a negative external-data offset or length")
    if size is not None and offset + (length or 0) > size:
        raise BadInput(
            f"{model_path}: tensor {tensor!r} declares {length:,} bytes at offset {offset:,} of {loc}, which holds {size:,} bytes; the data file is truncated or the model is forged"
            if length is not None
            else f"{model_path}: tensor {tensor!r} starts at offset {offset:,} of {loc}, which holds {size:,} bytes"
        )


def load_graph(model_path: Path):
    """The ONNX graph of ``model_path`` without its external data, size-checked before it is read
    (protobuf refuses files over 2 GiB anyway, after reading them whole)."""
    import onnx

    check_size(model_path, MAX_ONNX_BYTES, "model graph (weights over 2 GiB go in ONNX external data)")
    try:
        return onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError/OSError variants
        raise BadInput(f"{model_path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None


def check_external_data(model_path: Path) -> None:
    """Refuse external-data locations that are absolute or climb out with '..'."""
    external_data_locations(model_path)


def finalize_manifest(stage: Path, manifest: Manifest) -> Manifest:
    """Hash every file in the staging dir into ``manifest`` and write it last."""
    files = hash_directory(stage)
    manifest = manifest.model_copy(update={"schema_version": SCHEMA_VERSION, "files": files, "digest": digest_of_files(files)})
    manifest.size_bytes = sum(f.size for f in files.values())
    manifest.created = manifest.created or utc_now()
    manifest.tool_versions = manifest.tool_versions or tool_versions()
    write_json_atomic(stage / MANIFEST, manifest.as_json())
    return manifest
