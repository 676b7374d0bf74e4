"""The shipped Fashion-MNIST network: :class:`FashionResNet`, a small ResNet of BasicBlocks.

It holds the three ReLU cases attribution code must meet (a functional ``F.relu``, an in-place
``nn.ReLU``, one ``nn.ReLU`` module called twice per forward). The same class with
``in_channels=3`` is the CIFAR-10 ResNet-8 that ROAR can retrain. :mod:`.registry` names it
``"fashion_mnist"``; :mod:`.loading` loads its trained weights.

Example
-------
>>> FashionResNet(width=16)(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "FashionResNet"]


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus a shortcut, then ReLU (torchvision's BasicBlock, ResNet-8 style).

    The one ``nn.ReLU(inplace=True)`` module is called twice per forward (after ``bn1`` and after the
    residual addition), exactly as torchvision's ``BasicBlock`` does: attribution code that hooks
    modules must count it as two layers. The shortcut is a 1x1 conv + BN when the shape changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)  # reused: called twice per forward
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C_in, H, W)
        out = self.relu(self.bn1(self.conv1(x)))  # (N, C_out, H/s, W/s), 1st call of self.relu
        out = self.bn2(self.conv2(out))  # (N, C_out, H/s, W/s)
        out = out + self.shortcut(x)  # residual addition (out of place)
        return self.relu(out)  # 2nd call of the same in-place module


class FashionResNet(nn.Module):
    """A small residual CNN in the spirit of the authors' ResNet-8, for 28x28 Fashion-MNIST.

    stem (conv3x3-BN-``F.relu``) -> three stages of one :class:`BasicBlock` each (``width``,
    ``2*width``, ``4*width`` channels, strides 1/2/2) -> global average pool -> linear head.
    It holds the three ReLU cases attribution code must meet: a functional ``F.relu`` (stem), an
    in-place ``nn.ReLU`` and one ``nn.ReLU`` module called twice per forward (each block): 7 ReLU
    calls per forward in all. Any input size works (global pooling), so ``in_channels=3,
    num_classes=10`` is the CIFAR-10 (3x32x32) ResNet-8 used by ROAR.

    Example
    -------
    >>> FashionResNet(width=16)(torch.zeros(4, 1, 28, 28)).shape
    torch.Size([4, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.width = in_channels, num_classes, width
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = BasicBlock(width, width, stride=1)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.layer3 = BasicBlock(2 * width, 4 * width, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W), e.g. (N, 1, 28, 28)
        x = F.relu(self.bn1(self.conv1(x)))  # (N, w, 28, 28): the functional ReLU
        x = self.layer1(x)  # (N, w, 28, 28)
        x = self.layer2(x)  # (N, 2w, 14, 14)
        x = self.layer3(x)  # (N, 4w, 7, 7)
        x = self.avgpool(x).flatten(1)  # (N, 4w)
        return self.fc(x)  # (N, num_classes) logits

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, width={self.width}"
