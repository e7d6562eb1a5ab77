"""Streaming calibration reader: one sample at a time from real data, in bounded memory.

ORT's calibrators keep every intermediate output of what one ``collect_data`` call reads,
so quantize_static is driven with ``CalibStridedMinMax``: the reader exposes ``__len__``
and ``set_range`` and ORT collects ``stride`` samples at a time, merging ranges or
histograms between strides.
"""

from __future__ import annotations

from onnxruntime.quantization import CalibrationDataReader


def stride_for(n: int, cap: int = 16) -> int:
    return max(d for d in range(1, min(cap, n) + 1) if n % d == 0)


class StreamingReader(CalibrationDataReader):
    def __init__(self, samples, total: int):
        """``samples`` is a SampleSource with batch size 1; ``total`` how many it yields."""
        self._samples = samples
        self._iter = iter(samples)
        self._total = total
        self._left = total
        self.seen = 0

    def __len__(self):
        return self._total

    def set_range(self, start_index: int, end_index: int):
        self._left = end_index - start_index

    def get_next(self):
        if self._left <= 0:
            return None
        item = next(self._iter, None)
        if item is None:
            return None
        self._left -= 1
        self.seen += 1
        return item
