"""How many MatMuls int4 should keep at 8 bits on the SST-2 reference classifier, chosen on
rows the gate never reads.

Every variant is `edgedeploy quantize --method int4` of the same export of `reference:sst2`,
its 8-bit MatMuls ranked on the first 64 rows of sst2/train.tsv (the recipe's calib file).
Selection figures: against the float model on train rows 30000-32999 (rows after the ones
the ranking read): mean KL of the class distributions and flipped predictions. Report
figures (what `examples/sst2-compression.yaml`'s gate reads): accuracy on all of sst2/dev.tsv
and the drop from the float model, in points. Pick on the first, read the second.

Usage: .venv/bin/python benchmarks/int4_sensitivity.py [--work DIR] [--reuse]
Not run by CI (about 1 min per variant on 2 cores, plus the reference model when not cached).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
sys.path.insert(0, str(Path(__file__).parent))
SELECT_ROWS = (30000, 3000)  # offset, count in train.tsv
VARIANTS = {
    "2 at 8 bits (default)": {},
    "4 at 8 bits": {"int4_sensitive_8bit": 4},
    "6 at 8 bits": {"int4_sensitive_8bit": 6},
    "8 at 8 bits (the recipe)": {"int4_sensitive_8bit": 8},
    "2 at 8 bits, hqq": {"int4_algorithm": "hqq"},
    "2 at 8 bits, k_quant": {"int4_algorithm": "k_quant"},
    "6 at 8 bits, hqq": {"int4_sensitive_8bit": 6, "int4_algorithm": "hqq"},
    "2 at 8 bits, embeddings at 8": {"embedding_bits": 8},
}


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def selection_figures(model: Path, ref_outputs) -> tuple[float, int, int]:
    """(mean KL(float || variant), flipped predictions, rows) on the selection rows."""
    from edgedeploy.runtimes.session import Runner

    runner, kl, flips, rows = Runner(model, [0]), [], 0, 0
    for feeds, want in ref_outputs:
        got = runner.first(feeds)
        p, q = log_softmax(want), log_softmax(got)
        kl.append((np.exp(p) * (p - q)).sum(1))
        flips += int((got.argmax(1) != want.argmax(1)).sum())
        rows += len(got)
    return float(np.concatenate(kl).mean()), flips, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "artifacts" / "bench-int4-sensitivity")
    ap.add_argument("--reuse", action="store_true", help="reuse variants already built in --work")
    args = ap.parse_args()

    from quantize_compare import stepper

    from edgedeploy.core.artifact import Artifact
    from edgedeploy.data.samples import SampleSource
    from edgedeploy.export import export
    from edgedeploy.quality.accuracy import accuracy, labeled_eval
    from edgedeploy.quality.fidelity import reference_outputs
    from edgedeploy.quantize.api import quantize

    step = stepper(args.work, args.reuse)
    fp32 = Artifact.load(step("fp32", lambda p: export("reference:sst2", p, force=True)))
    offset, count = SELECT_ROWS
    ref = reference_outputs(fp32.model_path, SampleSource(fp32, SST2 / "train.tsv", "text", limit=count, offset=offset))
    batches, labels = labeled_eval(fp32, SST2 / "dev.tsv", "text", "label", 100_000)
    base = accuracy(fp32.model_path, batches, labels)
    print(f"\n{time.strftime('%Y-%m-%d')} | reference:sst2 (float dev accuracy {base:.4f} on {len(labels)} rows)")
    print(f"| int4 variant | MB | KL, train rows {offset}-{offset + count - 1} | flips | dev accuracy | drop (points) |")
    print("|---|---|---|---|---|---|")
    for i, (name, settings) in enumerate(VARIANTS.items()):
        with contextlib.redirect_stdout(sys.stderr):  # k_quant prints a progress bar
            art = Artifact.load(
                step(f"int4-{i}", lambda p, s=settings: quantize(fp32.path, p, "int4", calib_data=SST2 / "train.tsv", force=True, **s))
            )
        kl, flips, rows = selection_figures(art.model_path, ref)
        acc = accuracy(art.model_path, batches, labels)
        mb = art.model_path.stat().st_size / 1e6
        print(f"| {name} | {mb:.1f} | {kl:.5f} | {flips}/{rows} | {acc:.4f} | {100 * (base - acc):.3f} |", flush=True)


if __name__ == "__main__":
    main()
