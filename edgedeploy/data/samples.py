"""Real model inputs for calibration and fidelity: text files tokenized with the
artifact's own tokenizer, or .npz arrays; streamed in batches, never all at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgedeploy.core.errors import BadInput
from edgedeploy.data.datasets import iter_rows
from edgedeploy.runtimes.inputs import generate


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
    ):
        self.artifact = artifact
        self.path = Path(path) if path else None
        self.text_column = text_column
        self.label_column = label_column
        self.pair_column = pair_column  # second text of MNLI/QQP-style pairs
        self.limit = limit
        self.batch = batch
        self.max_length = max_length
        self.pad_to_max = pad_to_max  # histogram calibrators need equal shapes across samples
        self.allow_random = allow_random
        self.input_names = [i["name"] for i in artifact.inputs]
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
        }

    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            if not (self.artifact.path / "tokenizer_config.json").exists() and not (self.artifact.path / "tokenizer.json").exists():
                raise BadInput(f"{self.artifact.path}: has no tokenizer files, so text data cannot be tokenized; give an .npz of inputs")
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.artifact.path), local_files_only=True)
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
        texts, pairs, n = [], [], 0
        self.labels = []
        for row in iter_rows(self.path, cols):
            texts.append(str(row[self.text_column]))
            if self.pair_column:
                pairs.append(str(row[self.pair_column]))
            if self.label_column:
                self.labels.append(row[self.label_column])
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
        except (OSError, ValueError) as exc:
            raise BadInput(f"{self.path}: not a readable .npz ({exc})") from None
        missing = [n for n in self.input_names if n not in data.files]
        if missing:
            raise BadInput(f"{self.path}: lacks input(s) {', '.join(missing)}; it has {', '.join(data.files)}")
        total = min(len(data[self.input_names[0]]), self.limit)
        for i in range(0, total, self.batch):
            yield {n: data[n][i : min(i + self.batch, total)] for n in self.input_names}

    def _random(self):
        sig = self.artifact.inputs
        fill = self.artifact.validated_dims()  # an image's height, SAM's points: the sizes validation ran at
        done = 0
        seed = 0
        while done < self.limit:
            b = min(self.batch, self.limit - done)
            shape = {**fill, "batch": b, "sequence": 32}
            yield generate(sig, shape, seed=seed, vocab_size=self.artifact.manifest.get("vocab_size"), strict=False)
            done += b
            seed += 1
