"""Tiny analytic models for the tests (small enough to compute by hand) and a hook counter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyFunctionalNet(nn.Module):
    """x (N, 2) -> Linear(2, 3) -> functional ReLU (or ReLU6) -> Linear(3, 2) logits.

    Fixed weights, so gradients can be written down by hand::

        W1 = [[1, 2], [-1, 1], [3, -1]]   b1 = [0, 0.5, -5]
        W2 = [[1, -2, 1], [0.5, 1, -1]]   b2 = [0, 0]
    """

    def __init__(self, act: str = "relu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 3)
        self.fc2 = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0], [3.0, -1.0]]))
            self.fc1.bias.copy_(torch.tensor([0.0, 0.5, -5.0]))
            self.fc2.weight.copy_(torch.tensor([[1.0, -2.0, 1.0], [0.5, 1.0, -1.0]]))
            self.fc2.bias.zero_()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 2) -> (N, 2)
        z = self.fc1(x)  # (N, 3)
        h = F.relu(z) if self.act == "relu" else F.relu6(z)  # functional: no module to hook
        return self.fc2(h)


class TinyCNN(nn.Module):
    """conv-(BN)-ReLU-pool-conv-(BN)-ReLU-avgpool-linear, with the ReLU written as ``relu``.

    ``relu``: ``"module"`` (two separate ``nn.ReLU``), ``"inplace"`` (in-place modules),
    ``"reused"`` (one ``nn.ReLU`` called twice), ``"functional"`` (``F.relu``).
    The last ReLU is always reachable as ``self.relu2`` except for ``"functional"``.
    """

    def __init__(self, relu: str = "module", bn: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        self.relu_style = relu
        self.conv1 = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.fc = nn.Linear(8, 4)
        self.relu1 = nn.ReLU(inplace=relu == "inplace")
        self.relu2 = self.relu1 if relu == "reused" else nn.ReLU(inplace=relu == "inplace")
        if bn:  # non-trivial running statistics and affine parameters
            gen = torch.Generator().manual_seed(1)
            for m in (self.bn1, self.bn2):
                k = m.num_features
                m.running_mean.copy_(torch.randn(k, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(k, generator=gen) + 0.5)
                m.weight.data.copy_(torch.rand(k, generator=gen) + 0.5)
                m.bias.data.copy_(torch.randn(k, generator=gen) * 0.2)

    def _relu(self, x: torch.Tensor, which: int) -> torch.Tensor:
        if self.relu_style == "functional":
            return F.relu(x)
        return (self.relu1 if which == 1 else self.relu2)(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, 8, 8) -> (N, 4)
        x = self._relu(self.bn1(self.conv1(x)), 1)  # (N, 6, 8, 8)
        x = F.max_pool2d(x, 2)  # (N, 6, 4, 4)
        x = self._relu(self.bn2(self.conv2(x)), 2)  # (N, 8, 4, 4): Grad-CAM's feature map
        return self.fc(x.mean(dim=(2, 3)))  # (N, 4)


def tiny_cnn(relu: str = "module", bn: bool = False, seed: int = 0, dtype=torch.float32) -> TinyCNN:
    """A :class:`TinyCNN` with weights drawn from ``seed``, in eval mode (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyCNN(relu, bn).to(dtype).eval()


def hook_count(model: nn.Module) -> int:
    """Hooks (forward, forward-pre, backward, backward-pre) on all of ``model``'s modules.

    A method must leave none behind: ``assert hook_count(model) == 0`` after every call.
    """
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in model.modules()
    )
