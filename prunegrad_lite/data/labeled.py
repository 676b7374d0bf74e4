"""A labelled image set in memory: :class:`LabeledData`, normalised images with their labels.

It keeps the constants that normalised its images (so :meth:`LabeledData.denormalize` can undo
them) and the class names, and draws class-balanced subsets. :func:`labeled_from_uint8` builds
one from the uint8 arrays the dataset readers (:mod:`.fashion_mnist`, :mod:`.cifar10`) return.

Example
-------
>>> data = labeled_from_uint8(np.zeros((4, 28, 28), np.uint8), np.arange(4), (0.5,), (0.25,),
...                           ["a", "b", "c", "d"], "toy", None)
>>> data.images.shape, float(data.images[0, 0, 0, 0])
(torch.Size([4, 1, 28, 28]), -2.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prunegrad_lite.runtime import resolve_device

__all__ = ["LabeledData", "denormalize", "labeled_from_uint8"]


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo ``(x - mean) / std`` on ``x`` (..., C, H, W): pixels in [0, 1], clamped."""
    shape = (-1, 1, 1)  # broadcast over (..., C, H, W)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x * s + m).clamp(0.0, 1.0)


@dataclass
class LabeledData:
    """Normalised images with integer labels, the constants that normalised them, and names.

    Example
    -------
    >>> from prunegrad_lite.data import load_dataset
    >>> data = load_dataset("fashion_mnist", split="test")
    >>> data.images.shape, data.classes[0]
    (torch.Size([2000, 1, 28, 28]), 'T-shirt/top')
    """

    images: torch.Tensor  # (N, C, H, W) float32, (x - mean) / std with x in [0, 1]
    labels: torch.Tensor  # (N,) int64
    mean: tuple[float, ...]  # per channel, [0, 1] pixel units
    std: tuple[float, ...]  # per channel, [0, 1] pixel units
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"images must be (N, C, H, W) and labels (N,); got "
                f"{tuple(self.images.shape)} and {tuple(self.labels.shape)}"
            )
        if not len(self.mean) == len(self.std) == self.images.shape[1]:
            raise ValueError("mean and std need one value per channel")

    def __len__(self) -> int:
        return len(self.labels)

    def as_dataset(self) -> torch.utils.data.TensorDataset:
        """A ``TensorDataset`` of ``(image, label)`` pairs, for a ``DataLoader``."""
        return torch.utils.data.TensorDataset(self.images, self.labels)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation of ``x`` (..., C, H, W): pixels in [0, 1], clamped."""
        return denormalize(x, self.mean, self.std)

    def subset(self, n: int, seed: int = 0) -> LabeledData:
        """``n`` samples drawn without replacement, as class-balanced as possible, in order.

        Classes take turns (a random member of each class per round, rounds in a random
        permutation drawn from ``torch.Generator().manual_seed(seed)``).
        """
        if not 0 <= n <= len(self):
            raise ValueError(f"n must be in [0, {len(self)}], got {n}")
        generator = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=generator)  # (N,)
        labels = self.labels.cpu()[perm]
        rank = torch.zeros_like(perm)  # rank of each drawn sample within its class
        for c in labels.unique():
            members = labels == c
            rank[members] = torch.arange(int(members.sum()))
        order = torch.argsort(rank * len(self) + torch.arange(len(self)), stable=True)
        index = perm[order[:n]].sort().values.to(self.labels.device)
        return LabeledData(
            self.images[index],
            self.labels[index],
            self.mean,
            self.std,
            list(self.classes),
            self.name,
        )


def labeled_from_uint8(
    images_u8: np.ndarray,
    labels: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: list[str],
    name: str,
    device: Any,
) -> LabeledData:
    """Build normalised :class:`LabeledData` from uint8 images (N, H, W) or (N, C, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8))
    x = x.unsqueeze(1) if x.ndim == 3 else x  # (N, C, H, W) uint8
    dev = resolve_device(device) if device is not None else torch.device("cpu")
    x = x.to(dev).float().div_(255.0)
    m = torch.tensor(mean, device=dev).view(1, -1, 1, 1)
    s = torch.tensor(std, device=dev).view(1, -1, 1, 1)
    y = torch.from_numpy(np.asarray(labels).astype(np.int64)).to(dev)
    return LabeledData((x - m) / s, y, mean, std, list(classes), name)
