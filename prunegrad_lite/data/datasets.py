"""Labelled image sets as normalised tensors: :func:`load_dataset` for Fashion-MNIST and CIFAR-10.

* Fashion-MNIST (the embedded default): the class-balanced subset shipped in ``data/`` and the
  full 60k/10k set from the original IDX gzip files (:mod:`.fashion_mnist`);
* CIFAR-10 from its ``cifar-10-batches-py`` folder, read by our own safe pickle reader
  (:mod:`.cifar10`);
* both returned as :class:`~.labeled.LabeledData` (:mod:`.labeled`), normalised with the
  constants of the full training set.

Every file is checked against its sha256 in the registry (:mod:`.registry`) before it is read.

Example
-------
>>> data = load_dataset("fashion_mnist", split="test")
>>> data.images.shape, data.classes[0]
(torch.Size([2000, 1, 28, 28]), 'T-shirt/top')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from prunegrad_lite.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD, cifar10_arrays
from prunegrad_lite.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    fashion_mnist_arrays,
    fashion_mnist_split,
    read_idx,
)
from prunegrad_lite.data.labeled import LabeledData, denormalize, labeled_from_uint8
from prunegrad_lite.data.registry import DataError

__all__ = [  # with the names of the readers' modules that were imported from here
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "LabeledData",
    "denormalize",
    "fashion_mnist_split",
    "load_dataset",
    "read_idx",
]


_DATASETS = {
    "fashion_mnist": (FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
}


def load_dataset(
    name: str,
    split: Literal["train", "test"] = "train",
    subset: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = False,
    device: str | torch.device | None = None,
) -> LabeledData:
    """Load ``"fashion_mnist"`` or ``"cifar10"`` as normalised tensors.

    Parameters
    ----------
    name : ``"fashion_mnist"`` (also ``"fashion-mnist"``) or ``"cifar10"``.
    split : ``"train"`` or ``"test"``.
    subset : Fashion-MNIST only: ``True`` reads the shipped class-balanced subset (10,000 /
        2,000); ``False`` the full 60,000 / 10,000 set from the original IDX gzip files (the
        Debian folder, ``root``, or torchvision's ``FashionMNIST/raw`` layout under it).
        CIFAR-10 ships no subset and always reads the full split.
    root : folder holding the files; default :func:`data_root` (and the Debian folder).
    download : download missing files (never by default).
    device : where the tensors go; default CPU.

    The normalisation constants are those of the full training set (``FASHION_MNIST_MEAN``,
    ``CIFAR10_MEAN``, ...), the same for every split and for the subset.

    Example
    -------
    >>> data = load_dataset("fashion_mnist", split="train")
    >>> len(data), data.images.dtype, data.labels.dtype
    (10000, torch.float32, torch.int64)
    """
    key = name.lower().replace("-", "_")
    if key not in _DATASETS:
        raise DataError(
            f"unknown dataset {name!r}; known datasets: {', '.join(_DATASETS)} "
            "(for ImageNet-style folders use load_image_folder)"
        )
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(subset, (bool, np.bool_)):
        raise TypeError(
            f"subset must be True (the shipped subset) or False (the full set), "
            f"got {subset!r} ({type(subset).__name__})"
        )
    subset = bool(subset)
    folder = Path(root).expanduser() if root is not None else None
    if key == "fashion_mnist":
        images, labels, classes = fashion_mnist_arrays(split, subset, folder, download)
    else:
        images, labels, classes = cifar10_arrays(split, folder, download)
    mean, std = _DATASETS[key]
    return labeled_from_uint8(images, labels, mean, std, classes, f"{key}/{split}", device)
