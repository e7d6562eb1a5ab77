"""Model inputs from a signature: symbolic dims bound by --shape, or real arrays from .npz.

The short names ``batch`` and ``sequence`` bind whatever the exporter called those dims
(``batch_size``, ``sequence_length``, ``N``, ...). Fixed seed, so every run of a job
feeds the same tensors.
"""

from __future__ import annotations

import numpy as np

from .errors import ShapeError

ALIASES = {
    "batch": ("batch", "batch_size", "n", "N", "bs", "batch_dim"),
    "sequence": ("sequence", "sequence_length", "seq_len", "seq", "sequence_len", "encoder_sequence_length", "text_seq_len"),
}
_TOKEN_HINTS = ("input_ids", "ids", "token")
_MASK_HINTS = ("attention_mask", "mask")
_TYPE_HINTS = ("token_type_ids", "segment")
_POSITION_HINTS = ("position_ids",)


MAX_DIM = 1 << 31
MAX_INPUT_BYTES = 4 << 30  # generated or loaded inputs; the model's own activations come on top


def check_memory(arrays, where: str) -> None:
    """Refuse inputs (shape, dtype) that would not fit, before anything is allocated."""
    total = 0
    for dims, dtype in arrays:
        n = 1
        for d in dims:
            n *= int(d)
        total += n * dtype.itemsize
    if total > MAX_INPUT_BYTES:
        raise ShapeError(f"{where}: the inputs would take {total / 2**30:,.1f} GiB (limit {MAX_INPUT_BYTES / 2**30:.0f} GiB); use smaller dims")


def parse_shape(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ShapeError(f"--shape entry {part!r} must look like name=value, e.g. batch=1,sequence=128")
        k, v = part.split("=", 1)
        try:
            value = int(v)
        except ValueError:
            raise ShapeError(f"--shape {k.strip()}={v!r}: value must be a positive integer") from None
        if value <= 0 or value > MAX_DIM:
            raise ShapeError(f"--shape {k.strip()}={value}: value must be a positive integer up to {MAX_DIM:,}")
        if k.strip() in out:
            raise ShapeError(f"--shape {k.strip()} is given twice; give each dim once")
        out[k.strip()] = value
    return out


def symbolic_dims(signature: list[dict]) -> list[str]:
    seen = []
    for spec in signature:
        for d in spec["shape"]:
            if isinstance(d, str) and d not in seen:
                seen.append(d)
    return seen


def resolve_dims(signature: list[dict], shape: dict[str, int], strict: bool = True) -> dict[str, int]:
    """Map every symbolic dim of the model to a value, honouring the short aliases.
    ``strict=False`` ignores names the model does not have (for generic defaults)."""
    dims = symbolic_dims(signature)
    bound: dict[str, int] = {}
    for key, value in shape.items():
        if key in dims:
            bound[key] = value
            continue
        targets = [d for d in dims if d in ALIASES.get(key, ())]
        if not targets and not strict:
            continue
        if not targets:
            raise ShapeError(f"--shape {key}: the model has no such dim; its dims are: {', '.join(dims) or '(none, all static)'}")
        for d in targets:
            bound.setdefault(d, value)
    # a KV-cache decoder's prefill: no past yet, and a mask over past + new tokens
    for d in dims:
        if d not in bound and d.startswith("past_") and d.endswith("sequence_length") and "+" not in d:
            bound[d] = 0
    for d in dims:
        parts = [p.strip() for p in d.split("+")]
        if d not in bound and len(parts) > 1 and all(p in bound for p in parts):
            bound[d] = sum(bound[p] for p in parts)
    unbound = [d for d in dims if d not in bound]
    if unbound:
        raise ShapeError(
            f"unbound dim(s) {', '.join(unbound)}: bind them with --shape (model dims: {', '.join(dims)}; 'batch' and 'sequence' work as short names)"
        )
    return bound


def _concrete(spec: dict, bound: dict[str, int]) -> tuple[int, ...]:
    out = []
    for d in spec["shape"]:
        if isinstance(d, int):
            out.append(d)
        elif d in bound:
            out.append(bound[d])
        else:
            raise ShapeError(f"input {spec['name']}: dim {d!r} is not bound")
    return tuple(out)


def generate(
    signature: list[dict], shape: dict[str, int], seed: int = 0, vocab_size: int | None = None, strict: bool = True
) -> dict[str, np.ndarray]:
    """Deterministic inputs: token ids in [0, vocab), masks of ones, zeros for token
    types, 0..n position ids, floats ~ N(0, 1) clipped to [-3, 3] (images in a sane range)."""
    bound = resolve_dims(signature, shape, strict)
    check_memory([(_concrete(spec, bound), np.dtype(spec["dtype"])) for spec in signature], "--shape")
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in signature:
        name = spec["name"].lower()
        dims = _concrete(spec, bound)
        dtype = np.dtype(spec["dtype"])
        if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
            if any(h in name for h in _MASK_HINTS):
                arr = np.ones(dims, dtype=dtype)
            elif any(h in name for h in _TYPE_HINTS):
                arr = np.zeros(dims, dtype=dtype)
            elif any(h in name for h in _POSITION_HINTS):
                arr = np.broadcast_to(np.arange(dims[-1], dtype=dtype), dims).copy()
            else:
                high = vocab_size or 1000
                arr = rng.integers(0, high, size=dims).astype(dtype)
        else:
            arr = np.clip(rng.standard_normal(dims), -3, 3).astype(dtype)
        feeds[spec["name"]] = arr
    return feeds


def load_npz(path: str, signature: list[dict]) -> dict[str, np.ndarray]:
    """The model's inputs from an .npz (no pickles): numeric arrays whose rank and fixed dims
    match the signature and whose size fits; ``ShapeError`` naming the file otherwise."""
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise ValueError("a single array, not an .npz archive of named arrays")
        sizes = {i.filename[: -len(".npy")]: i.file_size for i in data.zip.infolist()}
    except Exception as exc:  # OSError, ValueError, zipfile.BadZipFile, ...
        raise ShapeError(f"{path}: not a readable .npz of input arrays ({str(exc)[:200]})") from None
    names = [s["name"] for s in signature]
    missing = [n for n in names if n not in data.files]
    if missing:
        raise ShapeError(f"{path}: lacks input(s) {', '.join(missing)}; it has {', '.join(data.files) or 'nothing'}")
    if sum(sizes.get(n, 0) for n in names) > MAX_INPUT_BYTES:
        raise ShapeError(f"{path}: the inputs are over {MAX_INPUT_BYTES / 2**30:.0f} GiB uncompressed; use fewer samples")
    feeds, bound = {}, {}
    for spec in signature:
        try:
            arr = data[spec["name"]]
        except Exception as exc:  # object arrays need pickles, which are refused; corrupt members
            raise ShapeError(f"{path}: array {spec['name']!r} is not readable ({str(exc)[:200]})") from None
        if arr.dtype.kind not in "biuf":
            raise ShapeError(f"{path}: array {spec['name']!r} has dtype {arr.dtype}; inputs are numbers ({spec['dtype']})")
        want = spec["shape"]
        if arr.ndim != len(want) or any(isinstance(w, int) and w != g for w, g in zip(want, arr.shape)) or 0 in arr.shape:
            raise ShapeError(f"{path}: array {spec['name']!r} has shape {list(arr.shape)}; the model takes {want}")
        for w, g in zip(want, arr.shape):
            if isinstance(w, str) and bound.setdefault(w, g) != g:
                raise ShapeError(f"{path}: array {spec['name']!r} has {w}={g}, another input has {w}={bound[w]}")
        feeds[spec["name"]] = arr.astype(np.dtype(spec["dtype"]), copy=False)
    return feeds
