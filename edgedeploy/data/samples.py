"""Real model inputs for calibration and fidelity: text files tokenized with the
artifact's own tokenizer, or .npz arrays; streamed in batches, never all at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgedeploy.core.bounded import limit_for, read_json_bounded
from edgedeploy.core.errors import BadInput
from edgedeploy.data.datasets import iter_rows
from edgedeploy.runtimes.inputs import MAX_INPUT_BYTES, generate


class SampleSource:
    """Re-iterable batches of feeds for one artifact."""

    def __init__(
        self,
        artifact,
        path: Path | None,
        text_column: str = "text",
        limit: int = 64,
        batch: int = 16,
        max_length: int = 128,
        allow_random: bool = False,
        label_column: str | None = None,
        pad_to_max: bool = False,
        pair_column: str | None = None,
        offset: int = 0,
    ):
        self.artifact = artifact
        self.offset = offset  # rows skipped first: a held-out split after the rows a search selected on
        self.path = Path(path) if path else None
        self.text_column = text_column
        self.label_column = label_column
        self.pair_column = pair_column  # second text of MNLI/QQP-style pairs
        self.limit = limit
        self.batch = batch
        self.max_length = max_length
        self.pad_to_max = pad_to_max  # histogram calibrators need equal shapes across samples
        self.allow_random = allow_random
        self.input_names = artifact.input_names
        if self.path is None and not allow_random:
            raise BadInput("no sample data: pass --data/--calib-data FILE (TSV/CSV/JSONL text or .npz), or --random-calibration")
        if self.path is not None and not self.path.is_file():
            raise BadInput(f"{self.path}: no such data file")
        self._tokenizer = None
        self.labels: list = []

    @property
    def kind(self) -> str:
        if self.path is None:
            return "random"
        return "npz" if self.path.suffix == ".npz" else "text"

    def describe(self) -> dict:
        return {
            "source": str(self.path) if self.path else "random inputs generated from the signature (not real data)",
            "kind": self.kind,
            "limit": self.limit,
            **({"offset": self.offset} if self.offset else {}),
        }

    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            if not (self.artifact.path / "tokenizer_config.json").exists() and not (self.artifact.path / "tokenizer.json").exists():
                raise BadInput(f"{self.artifact.path}: has no tokenizer files, so text data cannot be tokenized; give an .npz of inputs")
            for name in ("tokenizer.json", "tokenizer_config.json"):
                if (self.artifact.path / name).is_file():
                    read_json_bounded(self.artifact.path / name, name, limit_for(name))
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.artifact.path), local_files_only=True)
            except Exception as exc:  # the tokenizers library raises a bare Exception for a malformed file
                raise BadInput(
                    f"{self.artifact.path}: its tokenizer files cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
                ) from None
        return self._tokenizer

    def __iter__(self) -> Iterator[dict]:
        if self.kind == "npz":
            yield from self._npz()
        elif self.kind == "text":
            yield from self._text()
        else:
            yield from self._random()

    def _text(self):
        cols = (self.text_column,) + tuple(c for c in (self.label_column, self.pair_column) if c)
        texts, pairs, n, skipped = [], [], 0, 0
        self.labels, self.label_lines = [], []
        for row in iter_rows(self.path, cols):
            if skipped < self.offset:
                skipped += 1
                continue
            texts.append(str(row[self.text_column]))
            if self.pair_column:
                pairs.append(str(row[self.pair_column]))
            if self.label_column:
                self.labels.append(row[self.label_column])
                self.label_lines.append(row.line)
            n += 1
            if len(texts) == self.batch or n >= self.limit:
                yield self._encode(texts, pairs)
                texts, pairs = [], []
            if n >= self.limit:
                break
        if texts:
            yield self._encode(texts, pairs)

    def _encode(self, texts, pairs=None):
        enc = self.tokenizer()(
            texts, pairs or None, padding="max_length" if self.pad_to_max else True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        return {k: v.astype(np.int64) for k, v in enc.items() if k in self.input_names}

    def _npz(self):
        try:
            data = np.load(self.path, allow_pickle=False)
            if not hasattr(data, "files"):
                raise ValueError("a single array, not an .npz archive of named arrays")
            sizes = {i.filename.removesuffix(".npy"): i.file_size for i in data.zip.infolist()}
        except Exception as exc:  # OSError, ValueError, zipfile.BadZipFile, ...
            raise BadInput(f"{self.path}: not a readable .npz ({str(exc)[:200]})") from None
        missing = [n for n in self.input_names if n not in data.files]
        if missing:
            raise BadInput(f"{self.path}: lacks input(s) {', '.join(missing)}; it has {', '.join(data.files)}")
        if sum(sizes.get(n, 0) for n in self.input_names) > MAX_INPUT_BYTES:  # checked before anything is inflated
            raise BadInput(f"{self.path}: the inputs are over {MAX_INPUT_BYTES / 2**30:.0f} GiB uncompressed; use fewer samples")
        arrays = {}
        for n in self.input_names:
            try:
                arrays[n] = data[n]
            except Exception as exc:  # object arrays need pickles, which are refused; corrupt members
                raise BadInput(f"{self.path}: array {n!r} is not readable ({str(exc)[:200]})") from None
            if arrays[n].dtype.kind not in "biuf" or arrays[n].ndim == 0:
                raise BadInput(f"{self.path}: array {n!r} has dtype {arrays[n].dtype} and shape {list(arrays[n].shape)}; inputs are numeric arrays")
        total = min(len(arrays[self.input_names[0]]), self.offset + self.limit)
        for i in range(self.offset, total, self.batch):
            yield {n: arrays[n][i : min(i + self.batch, total)] for n in self.input_names}

    def _random(self):
        sig = self.artifact.signature()
        fill = self.artifact.validated_dims()  # an image's height, SAM's points: the sizes validation ran at
        done = 0
        seed = self.offset  # another split: other generated inputs
        while done < self.limit:
            b = min(self.batch, self.limit - done)
            shape = {**fill, "batch": b, "sequence": 32}
            yield generate(sig, shape, seed=seed, vocab_size=self.artifact.manifest.vocab_size, strict=False)
            done += b
            seed += 1
