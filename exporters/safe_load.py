"""Checks and safe loading for weight files: safetensors, PyTorch pickles (weights_only),
Git LFS pointers and truncated files each get a one-line BadInput."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from edgedeploy.core.errors import BadInput

LFS_MAGIC = b"version https://git-lfs.github.com/spec"


def check_not_lfs_pointer(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(len(LFS_MAGIC))
    if head == LFS_MAGIC:
        raise BadInput(f"{path}: is a Git LFS pointer, not the weights; run 'git lfs pull' in that repository")


def check_safetensors(path: Path) -> None:
    """Validate the header and that the file holds every byte the header promises."""
    check_not_lfs_pointer(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise BadInput(f"{path}: truncated safetensors file ({size} bytes)")
        (hlen,) = struct.unpack("<Q", raw)
        if hlen <= 0 or 8 + hlen > size:
            raise BadInput(
                f"{path}: not a valid safetensors file (header length {hlen} exceeds file size {size}); the file is truncated or not safetensors"
            )
        try:
            header = json.loads(fh.read(hlen))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise BadInput(f"{path}: not a valid safetensors file (unreadable header)") from None
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, TypeError, IndexError, ValueError):
        raise BadInput(f"{path}: not a valid safetensors file (the header is not a map of tensors with data_offsets)") from None
    if 8 + hlen + end > size:
        raise BadInput(f"{path}: truncated safetensors file: header promises {8 + hlen + end} bytes, file has {size}")


def check_torch_file(path: Path) -> None:
    check_not_lfs_pointer(path)
    if not zipfile.is_zipfile(path):
        raise BadInput(f"{path}: truncated or not a PyTorch checkpoint (not a valid zip archive)")


def check_weight_file(path: Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        check_safetensors(path)
    else:
        check_torch_file(path)


def load_state_dict(path: Path, trust_pickle: bool = False) -> dict:
    """A state dict from .safetensors or a .pt/.bin loaded with weights_only=True."""
    import torch

    path = Path(path)
    check_weight_file(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = load_torch_pickle(path, trust_pickle)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BadInput(f"{path}: does not hold a state dict of tensors")
    return obj


def load_torch_pickle(path: Path, trust_pickle: bool = False):
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
            raise BadInput(
                f"{path}: refused by torch.load(weights_only=True) ({first[:160]}); "
                "if you trust this file, pass --trust-pickle to load arbitrary pickled code"
            ) from None
        raise BadInput(f"{path}: could not unpickle ({exc})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise BadInput(f"{path}: truncated or not a PyTorch checkpoint ({str(exc).splitlines()[0][:200]})") from None


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips that contain a ``code/`` folder."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.startswith("code/") for n in zf.namelist())


def weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError, AttributeError):
            raise BadInput(f"{index}: not a valid shard index (a JSON object with a weight_map)") from None
        bad = [s for s in shards if not isinstance(s, str) or "/" in s or "\\" in s or s.startswith(".")]
        if bad:
            raise BadInput(f"{index}: shard {bad[0]!r} is not a file name in this directory")
        return [path / s for s in shards]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).exists():
            return [path / name]
    found = sorted(p for p in path.glob("*.safetensors"))
    if found:
        return found
    raise BadInput(f"{path}: has config.json but no weights (model.safetensors or pytorch_model.bin)")
