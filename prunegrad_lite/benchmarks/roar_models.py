"""The network ROAR retrains on CPU: a small, fast CNN (not the explained FashionResNet).

Hooker et al. (2019) retrain the explained architecture. On 2 CPU cores that does not fit: a
ROAR grid is 100+ retrainings, and each must *converge* (reach, on unmodified images, within
1.5 points of the same recipe trained three times longer), or ROAR measures which cue a short
recipe picks up fastest instead of what the removed pixels carried. :class:`RoarNet` trains
about 4x faster than ``FashionResNet(width=16)`` per image on 2 cores (measured side by side),
so every cell can be trained to convergence. The maps that rank the pixels are still the
explained model's (the shipped FashionResNet): only the network that is retrained to read the
modified images is smaller. The ``paper`` preset retrains a ResNet-8 (FashionResNet) as the
authors do.

Example
-------
>>> RoarNet(1, 10)(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from prunegrad_lite.benchmarks.roar_config import RoarConfig
from prunegrad_lite.models import FashionResNet

__all__ = ["RoarNet", "network_fn"]


class RoarNet(nn.Module):
    """conv3x3-BN-ReLU-maxpool (``width``) -> conv3x3-BN-ReLU-maxpool (2 ``width``) ->
    conv3x3-BN-ReLU (4 ``width``) -> global average pool -> linear. Any input size."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 2 or width < 1:
            raise ValueError("in_channels and width must be >= 1 and num_classes >= 2")
        self.in_channels, self.num_classes, self.width = in_channels, num_classes, width
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.fc = nn.Linear(4 * width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (N, w, H/2, W/2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # (N, 2w, H/4, W/4)
        x = F.relu(self.bn3(self.conv3(x)))  # (N, 4w, H/4, W/4)
        return self.fc(x.mean(dim=(2, 3)))  # (N, num_classes)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, width={self.width}"


def network_fn(
    config: RoarConfig, channels: int, classes: int, model_fn: Callable[[], nn.Module] | None
) -> Callable[[], nn.Module]:
    """What a ROAR cell retrains: ``model_fn`` when given, else ``config.network`` (RoarNet or
    FashionResNet at the recipe's width) for ``channels`` inputs and ``classes`` outputs."""
    if model_fn is not None:
        return model_fn
    if config.network == "roarnet":
        return lambda: RoarNet(channels, classes, config.recipe.width)
    return lambda: FashionResNet(channels, classes, config.recipe.width)
