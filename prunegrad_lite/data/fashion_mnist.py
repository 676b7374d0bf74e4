"""Fashion-MNIST: its constants, the IDX file format it is stored in, and reading its files.

The shipped class-balanced subset in ``data/`` (built by ``scripts/build_fashion_mnist_subset.py``)
and the full 60k/10k set read from the original IDX gzip files (Debian
``dataset-fashion-mnist``, or downloaded); every file is checked against its sha256 in the
registry (:mod:`.registry`) before it is read. :func:`~.datasets.load_dataset` turns the arrays
into normalised tensors.

Example
-------
>>> images, labels, classes = fashion_mnist_arrays("test", subset=True, root=None, download=False)
>>> images.shape, images.dtype, classes[labels[0]] in FASHION_MNIST_CLASSES
((2000, 28, 28), dtype('uint8'), True)
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from prunegrad_lite.data.registry import (
    SYSTEM_DATA_ROOTS,
    DataError,
    check_file,
    data_root,
    fetch,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "fashion_mnist_arrays",
    "fashion_mnist_split",
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


def fashion_mnist_arrays(
    split: str, subset: bool, root: Path | None, download: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fashion-MNIST ``split`` as uint8 images (N, 28, 28), labels (N,) and the class names: the
    shipped subset (``subset=True``) or the full set from its IDX gzip files, looked for in
    ``root``, else in :func:`data_root` and the Debian folder (``download=True`` fetches them)."""
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
