"""``edgedeploy tune``: the fastest variant that meets a budget, measured on the target."""

from edgedeploy.tune.options import TuneOptions
from edgedeploy.tune.search import tune

__all__ = ["TuneOptions", "tune"]
