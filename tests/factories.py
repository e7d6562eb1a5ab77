"""Small modules for the --factory export path (importable as `factories` from tests/)."""

import torch
from torch import nn


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


def tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.LayerNorm(128), nn.Linear(128, 8)).eval()


class PlantedMismatch(nn.Module):
    """Computes something different while being exported than in eager mode: the
    validation step must catch it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y = self.fc(x)
        if torch.onnx.is_in_onnx_export():
            return y * 1.01
        return y


def planted_mismatch():
    torch.manual_seed(0)
    return PlantedMismatch().eval()


def not_a_module():
    return {"weights": [1, 2, 3]}


@torch.library.custom_op("edgedeploy_test::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x.sin() * 2


@_mystery.register_fake
def _(x):
    return torch.empty_like(x)


class UsesUnsupportedOp(nn.Module):
    def forward(self, x):
        return torch.ops.edgedeploy_test.mystery(x) + 1


def unsupported_op():
    return UsesUnsupportedOp().eval()


class OutlierMLP(nn.Module):
    """A planted sensitive layer: ``fc1`` emits one channel 1000x larger than the rest
    (an activation outlier, as in LLM.int8), and ``fc2`` gives that channel almost no
    weight. Float output is fine; quantizing fc2's input per tensor crushes every other
    channel to a few levels, so fc2's MatMul is the node to keep in float."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 32)
        self.fc3 = nn.Linear(32, 8)
        with torch.no_grad():
            self.fc1.weight[0].mul_(1000.0)
            self.fc1.bias[0] = 1000.0
            self.fc2.weight[:, 0] = 1e-6

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def outlier_mlp():
    torch.manual_seed(0)
    return OutlierMLP().eval()


def wide_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 16)).eval()


class FixedBatchOnExport(nn.Module):
    """Traced with torch.jit.trace, the batch is baked into a Reshape (as some Hugging Face models
    are when exported): the graph declares a symbolic batch but runs at the traced one only."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(x).reshape(int(x.shape[0]), 4)  # a Python int: traced as a constant


def fixed_batch_on_export():
    torch.manual_seed(0)
    return FixedBatchOnExport().eval()


class SamplesAtInference(nn.Module):
    """Adds noise at inference, as ViTMAE's random masking and VITS's sampling do: PyTorch
    disagrees with itself on the same input, so no export can be shown to match it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y = self.fc(x)
        return y + torch.rand_like(y)


def samples_at_inference():
    torch.manual_seed(0)
    return SamplesAtInference().eval()
