"""Data: one registry of checked files, and loaders for every image set the package uses.

============================ =====================================================================
module                       what it holds
============================ =====================================================================
:mod:`.registry`             the registered files with their sha256, :func:`fetch`, data roots
:mod:`.datasets`             :func:`load_dataset`: Fashion-MNIST and CIFAR-10 as normalised tensors
:mod:`.fashion_mnist`        Fashion-MNIST's constants and files: the shipped subset, the IDX set
:mod:`.cifar10`              CIFAR-10's constants and its batch files, read by a safe unpickler
:mod:`.labeled`              :class:`LabeledData`: normalised images, labels, class names
:mod:`.images`               ImageNet preprocessing, the offline photographs, folders, class names
============================ =====================================================================

Every file is checked against the sha256 in :data:`REGISTRY`; a missing, corrupt or
undownloadable file raises :class:`DataError` saying which file, why, and how to get it.
Nothing is downloaded at import time, and only when ``download=True`` is passed. The shipped
Fashion-MNIST subset is rebuilt by ``scripts/build_fashion_mnist_subset.py``.
"""

from __future__ import annotations

from prunegrad_lite.data.datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    LabeledData,
    load_dataset,
    read_idx,
)
from prunegrad_lite.data.images import (
    IMAGENET_NORMALIZATION,
    OBJECT_PHOTOS,
    PHOTOS,
    Photo,
    denormalize_imagenet,
    imagenet_classes,
    load_image_folder,
    load_photo,
    load_photos,
    preprocess_imagenet,
)
from prunegrad_lite.data.registry import (
    CACHE_DIR,
    DEBIAN_FASHION_MNIST_DIR,
    ENV_VAR,
    REGISTRY,
    REPO_DATA_DIR,
    SYSTEM_DATA_ROOTS,
    DataError,
    DataFile,
    check_file,
    data_root,
    fetch,
    register,
)

__all__ = [
    "DataError",
    "DataFile",
    "REGISTRY",
    "register",
    "data_root",
    "fetch",
    "check_file",
    "read_idx",
    "LabeledData",
    "load_dataset",
    "load_image_folder",
    "OBJECT_PHOTOS",
    "PHOTOS",
    "load_photo",
    "load_photos",
    "preprocess_imagenet",
    "denormalize_imagenet",
    "imagenet_classes",
    # constants other modules and tests read
    "CACHE_DIR",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DEBIAN_FASHION_MNIST_DIR",
    "ENV_VAR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGENET_NORMALIZATION",
    "Photo",
    "REPO_DATA_DIR",
    "SYSTEM_DATA_ROOTS",
]
