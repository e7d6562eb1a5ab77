"""Compression before export (PyTorch side): structured pruning and knowledge distillation.
Each step reads a Hugging Face model and writes a new checkpoint directory that exports like
any other model, with ``compression.json`` saying what was removed and what it cost."""

from edgedeploy.compress.distill import distill
from edgedeploy.compress.options import DistillOptions, PruneOptions, TrainingOptions
from edgedeploy.compress.prune import prune

__all__ = ["DistillOptions", "PruneOptions", "TrainingOptions", "distill", "prune"]
