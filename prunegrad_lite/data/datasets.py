"""Labelled image sets as normalised tensors: Fashion-MNIST and CIFAR-10.

* Fashion-MNIST (the embedded default): the class-balanced subset shipped in ``data/`` (built by
  ``scripts/build_fashion_mnist_subset.py``) and the full 60k/10k set read from the original IDX
  gzip files (Debian ``dataset-fashion-mnist``);
* CIFAR-10 from its ``cifar-10-batches-py`` folder, read by our own safe pickle reader.

Every file is checked against its sha256 in the registry (:mod:`.registry`) before it is read.

Example
-------
>>> data = load_dataset("fashion_mnist", split="test")
>>> data.images.shape, data.classes[0]
(torch.Size([2000, 1, 28, 28]), 'T-shirt/top')
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import urllib.error
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from prunegrad_lite.data.registry import (
    ENV_VAR,
    SYSTEM_DATA_ROOTS,
    DataError,
    check_file,
    data_root,
    fetch,
)
from prunegrad_lite.runtime import resolve_device

__all__ = [
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

# Mean and std of all 60,000 x 784 training pixels of the full set, in [0, 1] pixel units
# (0.28604059698879553 and 0.35302424451492254); used for the subset and the full set alike.
FASHION_MNIST_MEAN = (0.2860406,)
FASHION_MNIST_STD = (0.3530242,)
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
# Per-channel mean and std of the 50,000 CIFAR-10 training images. The std is the pixel std
# (0.247, 0.243, 0.261); the (0.2023, 0.1994, 0.2010) seen in many repositories is not.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


# --------------------------------------------------------------------------------------------
# IDX files (the MNIST format) and the full Fashion-MNIST set
# --------------------------------------------------------------------------------------------
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not, into a numpy array.

    Layout: two zero bytes, a dtype code (0x08 = uint8, ...), the number of dimensions, then
    each dimension as a big-endian uint32, then the values in C order.

    Raises
    ------
    DataError
        a bad magic number, a wrong size, or a broken gzip stream.

    Example
    -------
    >>> read_idx(DEBIAN_FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
    (10000,)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file missing: no file at {path}")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"IDX file {path} is corrupt: broken gzip stream ({err})") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(
            f"{path} is not an IDX file: bad magic number {raw[:4].hex()!r} "
            "(expected 0000 + dtype code + number of dimensions)"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"IDX file {path} is corrupt: header says shape {shape} "
            f"({expected} bytes) but the file has {len(raw)} bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def fashion_mnist_split(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The full Fashion-MNIST ``split`` from the original IDX gzip files in ``folder``, checked."""
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"fashion_mnist/{prefix}-{kind}"
        arrays.append(read_idx(check_file(name, folder / f"{prefix}-{kind}.gz")))
    return arrays[0], arrays[1]  # (N, 28, 28) uint8, (N,) uint8


# --------------------------------------------------------------------------------------------
# Labelled image sets
# --------------------------------------------------------------------------------------------
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


def _labeled(
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


def _load_fashion_mnist(
    split: str, subset: bool, root: Path | None, download: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if subset:
        with np.load(fetch("fashion_mnist_subset", root), allow_pickle=False) as npz:
            return npz[f"x_{split}"], npz[f"y_{split}"], FASHION_MNIST_CLASSES
    prefix = "train" if split == "train" else "t10k"
    if root is None:  # data_root()/fashion-mnist, then Debian's /usr/share/datasets/fashion-mnist
        folders = [r / "fashion-mnist" for r in (data_root(), *SYSTEM_DATA_ROOTS)]
    else:  # the files in root itself, as fetch() places them, or in torchvision's layout
        folders = [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    for folder in folders:
        if (folder / f"{prefix}-images-idx3-ubyte.gz").is_file():
            return (*fashion_mnist_split(split, folder), FASHION_MNIST_CLASSES)
    if download:
        target = root if root is not None else data_root()
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            fetch(f"fashion_mnist/{prefix}-{kind}", target, download=True)
        return (*fashion_mnist_split(split, target / "fashion-mnist"), FASHION_MNIST_CLASSES)
    raise DataError(
        f"the full Fashion-MNIST {split} set is missing: no {prefix}-images-idx3-ubyte.gz in "
        f"{', '.join(map(str, folders))}. Install it with `apt install dataset-fashion-mnist`, "
        "or pass download=True, or pass root= a folder holding the original IDX gzip files "
        "(or use subset=True for the copy shipped with the package)."
    )


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a data file must not run code."""

    _ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        module = module.replace("numpy.core", "numpy._core")  # pickles from numpy < 2
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"CIFAR-10 file missing: {path}")
    try:
        with open(path, "rb") as f:
            content = _SafeUnpickler(f, encoding="latin1").load()
    except Exception as err:  # any failure to unpickle means a corrupt file
        raise DataError(f"CIFAR-10 file {path} is corrupt or not a CIFAR pickle: {err}") from err
    if not isinstance(content, dict):
        raise DataError(f"CIFAR-10 file {path} is not a dict pickle")
    return content


def _load_cifar10(
    split: str, root: Path | None, download: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10 from the ``cifar-10-batches-py`` folder, read by our own pickle reader.

    torchvision's ``CIFAR10`` checks the md5 of every batch file, so it can only read the
    exact original files; our reader checks structure instead (keys, shapes, label range) and
    refuses pickles that would run code, so it reads any folder in the documented format,
    including the tiny ones the tests write. torchvision is used for downloading only: its
    ``download_and_extract_archive`` checks the archive's md5.
    """
    base = root if root is not None else data_root()
    folder = base if (base / "batches.meta").is_file() else base / "cifar-10-batches-py"
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if download and not all((folder / f).is_file() for f in [*files, "batches.meta"]):
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(
                CIFAR10.url, str(base), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
            )
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            offline = isinstance(err, (urllib.error.URLError, TimeoutError, ConnectionError))
            raise DataError(
                f"{'no network: ' if offline else ''}could not download CIFAR-10 from {CIFAR10.url} ({err}). Unpack "
                f"cifar-10-python.tar.gz so that {base / 'cifar-10-batches-py'} exists, or set "
                f"{ENV_VAR}."
            ) from err
        folder = base / "cifar-10-batches-py"
    if not (folder / "batches.meta").is_file():
        raise DataError(
            f"CIFAR-10 is missing: no {folder}/batches.meta. Pass download=True (163 MB from "
            "https://www.cs.toronto.edu/~kriz/cifar.html), or unpack cifar-10-python.tar.gz into "
            f"{base}, or pass root= (or set {ENV_VAR} to) the folder holding cifar-10-batches-py."
        )
    classes = _read_cifar_pickle(folder / "batches.meta").get("label_names")
    if not isinstance(classes, list) or len(classes) != 10:
        raise DataError(f"CIFAR-10 file {folder / 'batches.meta'} has no list of 10 label_names")
    images, labels = [], []
    for name in files:
        batch = _read_cifar_pickle(folder / name)
        data, batch_labels = np.asarray(batch.get("data")), np.asarray(batch.get("labels"))
        if (
            data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != 3072
            or batch_labels.shape != data.shape[:1]
            or not np.isin(batch_labels, np.arange(10)).all()
        ):
            raise DataError(
                f"CIFAR-10 file {folder / name} is corrupt: expected 'data' (n, 3072) "
                "uint8 and 'labels' with n values in 0..9"
            )
        images.append(data.reshape(-1, 3, 32, 32))  # rows are R (1024), G, B planes
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels), [str(c) for c in classes]


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
        images, labels, classes = _load_fashion_mnist(split, subset, folder, download)
    else:
        images, labels, classes = _load_cifar10(split, folder, download)
    mean, std = _DATASETS[key]
    return _labeled(images, labels, mean, std, classes, f"{key}/{split}", device)
