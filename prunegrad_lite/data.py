"""Data: one registry of checked files, and loaders for every image set the package uses.

* Fashion-MNIST (the embedded default): a class-balanced subset shipped in ``data/`` and the
  full 60k/10k set read from the original IDX gzip files (Debian ``dataset-fashion-mnist``).
* CIFAR-10 and an ImageNet-style folder, for users who have them (online-only paths).
* Real photographs from scikit-image and scikit-learn, with ImageNet preprocessing.
* The 1000 ImageNet class names, shipped in ``prunegrad_lite/resources``.

Every file is checked against the sha256 in :data:`REGISTRY`; a missing, corrupt or
undownloadable file raises :class:`DataError` saying which file, why, and how to get it.
Nothing is downloaded at import time, and only when ``download=True`` is passed.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import struct
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from prunegrad_lite.device import resolve_device

__all__ = [
    "DataError",
    "DataFile",
    "REGISTRY",
    "register",
    "data_root",
    "fetch",
    "check_file",
    "read_idx",
    "build_fashion_mnist_subset",
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
]

ENV_VAR = "PRUNEGRAD_LITE_DATA"
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CACHE_DIR = Path.home() / ".cache" / "prunegrad_lite"
# Read-only data roots searched after data_root(): Debian's dataset-* packages install here.
SYSTEM_DATA_ROOTS = (Path("/usr/share/datasets"),)
DEBIAN_FASHION_MNIST_DIR = SYSTEM_DATA_ROOTS[0] / "fashion-mnist"
FASHION_MNIST_URL = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # torchvision's mirror
)

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
# ImageNet normalisations in [0, 1] pixel units. EfficientNet-Lite0 uses (x - 127) / 128 on
# 0..255 pixels, which is mean 127/255 and std 128/255 in these units.
IMAGENET_NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "efficientnet_lite0": ((127 / 255,) * 3, (128 / 255,) * 3),
    "torchvision": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
Style = Literal["efficientnet_lite0", "torchvision"]


class DataError(ValueError):
    """A data file is unknown, missing, corrupt, or could not be downloaded.

    The message names the file, says why, and says how to get it.
    """


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataFile:
    """One file the package reads, with the sha256 that :func:`fetch` checks.

    For a ``.gz`` file the sha256 is that of the *decompressed* bytes, so that copies
    recompressed by a distribution (Debian's Fashion-MNIST files differ from Zalando's only in
    the gzip header) verify alike.

    Example
    -------
    >>> entry = REGISTRY["fashion_mnist_subset"]
    >>> entry.filename
    'fashion_mnist_subset.npz'
    """

    name: str  # key in REGISTRY
    filename: str  # path relative to a data root, e.g. "fashion-mnist/t10k-labels-idx1-ubyte.gz"
    sha256: str  # hex digest (of the decompressed bytes for .gz files)
    url: str | None  # where download=True gets it; None when it only ships with the repository
    licence: str
    description: str


REGISTRY: dict[str, DataFile] = {}


def register(entry: DataFile, overwrite: bool = False) -> DataFile:
    """Add ``entry`` to :data:`REGISTRY` (a one-liner per new file) and return it.

    Registering the same entry twice is harmless; a different entry under a taken name raises
    ``ValueError`` unless ``overwrite=True``.

    Example
    -------
    >>> _ = register(DataFile("demo", "demo.pt", "0" * 64, None, "MIT", "a demo checkpoint"))
    >>> _ = REGISTRY.pop("demo")
    """
    old = REGISTRY.get(entry.name)
    if old is not None and old != entry and not overwrite:
        raise ValueError(f"a different data file is already registered as {entry.name!r}: {old}")
    REGISTRY[entry.name] = entry
    return entry


_FASHION_LICENCE = "MIT (Copyright (c) 2017 Zalando SE)"
register(
    DataFile(
        "fashion_mnist_subset",
        "fashion_mnist_subset.npz",
        "efeba304ecd0584fc6d895baf3a6a9c3caecf53d87f4a9e7dbb5d7e6e2da0f2a",
        None,
        _FASHION_LICENCE,
        "Class-balanced Fashion-MNIST subset: 10,000 train (1,000 per class) and 2,000 test "
        "(200 per class), uint8; built by build_fashion_mnist_subset(seed=0).",
    )
)
_FASHION_MNIST_IDX_SHA256 = {  # of the decompressed files; the same for Debian's and Zalando's
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
for _file, _sha in _FASHION_MNIST_IDX_SHA256.items():
    _url = f"{FASHION_MNIST_URL}{_file}.gz"
    register(
        DataFile(
            f"fashion_mnist/{_file}",
            f"fashion-mnist/{_file}.gz",
            _sha,
            _url,
            _FASHION_LICENCE,
            f"full Fashion-MNIST {_file.replace('-', ' ')}, original IDX gzip file",
        )
    )


# The shipped FashionResNet checkpoint: prunegrad_lite.models; record in fashion_resnet.json
register(
    DataFile(
        "fashion_resnet",
        "fashion_resnet.pt",
        "29cd2900b5cc50c8514c15dff73d91c9deffbbb714549235ca7217df0ff3d516",
        None,
        "MIT (prunegrad_lite; trained on Fashion-MNIST, " + _FASHION_LICENCE + ")",
        "FashionResNet(width=16) weights, 91.2% on the full Fashion-MNIST test set, trained by "
        "`prunegrad-lite train --full --epochs 4 --seed 0`; training record fashion_resnet.json.",
    )
)


def data_root() -> Path:
    """The folder that holds data files.

    ``$PRUNEGRAD_LITE_DATA`` if set, else the repository's ``data/`` folder when it exists
    (a source checkout or editable install), else ``~/.cache/prunegrad_lite``.

    Example
    -------
    >>> (data_root() / "fashion_mnist_subset.npz").name
    'fashion_mnist_subset.npz'
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return REPO_DATA_DIR if REPO_DATA_DIR.is_dir() else CACHE_DIR


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, of its decompressed bytes for ``.gz`` files (memoised)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = _sha256_uncached(path)
    return _VERIFIED[key]


def _sha256_uncached(path: Path) -> str:
    digest = hashlib.sha256()
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        return f"<not a valid gzip file: {err}>"
    return digest.hexdigest()


def _how_to_get(entry: DataFile, path: Path) -> str:
    if entry.url is None:
        shipped = REPO_DATA_DIR / entry.filename
        where = f" (the repository copy is {shipped})" if shipped.is_file() else ""
        return (
            f"This file ships with the repository's data/ folder{where}: copy it to {path}, "
            f"or unset {ENV_VAR}, or restore it with `git checkout data/{entry.filename}`."
        )
    return (
        f"Pass download=True to get it from {entry.url}, or place the file at {path}, "
        f"or set {ENV_VAR} to a folder that holds it."
    )


def fetch(name: str, root: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Return the path of the registered file ``name`` after checking its sha256.

    Parameters
    ----------
    name : a key of :data:`REGISTRY`.
    root : the data root to look in (the file is ``root / entry.filename``); default
        :func:`data_root`, then the read-only :data:`SYSTEM_DATA_ROOTS` (``/usr/share/datasets``).
    download : download from the entry's url into ``root`` (default :func:`data_root`) when the
        file is missing; never by default.

    Raises
    ------
    DataError
        unknown name (lists the known ones), missing file, sha256 mismatch (both hashes), or a
        failed download (offline).

    Example
    -------
    >>> fetch("fashion_mnist_subset").name
    'fashion_mnist_subset.npz'
    """
    if name not in REGISTRY:
        raise DataError(f"unknown data file {name!r}; known names: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[name]
    roots = [Path(root).expanduser()] if root is not None else [data_root(), *SYSTEM_DATA_ROOTS]
    candidates = [r / entry.filename for r in roots]
    found = [path for path in candidates if path.is_file()]
    if found:
        return check_file(name, found[0])
    if download and entry.url is not None:
        _download(entry, candidates[0])
        return candidates[0]
    raise DataError(
        f"data file {name!r} is missing: no file at {' or '.join(map(str, candidates))}. "
        + _how_to_get(entry, candidates[0])
    )


def check_file(name: str, path: str | os.PathLike) -> Path:
    """Check that ``path`` holds the registered file ``name`` (its sha256) and return it.

    For files that sit outside a data root, e.g. in a folder the user names.

    Example
    -------
    >>> check_file("fashion_mnist_subset", data_root() / "fashion_mnist_subset.npz").suffix
    '.npz'
    """
    entry, path = REGISTRY[name], Path(path)
    if not path.is_file():
        raise DataError(
            f"data file {name!r} is missing: no file at {path}. " + _how_to_get(entry, path)
        )
    actual = _sha256(path)
    if actual != entry.sha256:
        raise DataError(
            f"data file {name!r} at {path} is corrupt or a different version: sha256 mismatch, "
            f"expected {entry.sha256}, got {actual}. Delete it and get it again. "
            + _how_to_get(entry, path)
        )
    return path


def _download(entry: DataFile, path: Path) -> None:
    """Stream ``entry.url`` into a temporary file next to ``path``, check it, then rename."""
    assert entry.url is not None
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out, urllib.request.urlopen(entry.url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        actual = _sha256_uncached(tmp)
        if actual != entry.sha256:
            raise DataError(
                f"download of {entry.name!r} from {entry.url} has the wrong sha256: "
                f"expected {entry.sha256}, got {actual}"
            )
        os.replace(tmp, path)  # atomic: readers never see a half-written file
    except (urllib.error.URLError, OSError) as err:  # OSError covers timeouts and resets
        offline = isinstance(err, (urllib.error.URLError, TimeoutError, ConnectionError))
        raise DataError(
            f"{'no network: ' if offline else ''}could not download {entry.name!r} from "
            f"{entry.url} to {path} ({err}). Place the file at {path} or set {ENV_VAR} to a "
            "folder that holds it."
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# IDX files and the Fashion-MNIST subset
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


def _fashion_split(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The full Fashion-MNIST ``split`` from the original IDX gzip files in ``folder``, checked."""
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"fashion_mnist/{prefix}-{kind}"
        arrays.append(read_idx(check_file(name, folder / f"{prefix}-{kind}.gz")))
    return arrays[0], arrays[1]  # (N, 28, 28) uint8, (N,) uint8


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed zip timestamps), atomic."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, member.getvalue())
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def build_fashion_mnist_subset(
    source_dir: str | os.PathLike = DEBIAN_FASHION_MNIST_DIR,
    out_path: str | os.PathLike | None = None,
    n_train_per_class: int = 1000,
    n_test_per_class: int = 200,
    seed: int = 0,
) -> Path:
    """Build the shipped class-balanced Fashion-MNIST subset from the original IDX files.

    Draws ``n_*_per_class`` images per class without replacement with
    ``np.random.default_rng(seed)`` (classes in order 0..9, train before test), keeps them in
    their original order, and writes a compressed ``.npz`` with ``x_train`` (N, 28, 28) uint8,
    ``y_train`` (N,) uint8, ``index_train`` (N,) int64 (rows of the full set), and the same for
    test. With the defaults this reproduces ``data/fashion_mnist_subset.npz`` (the bytes too,
    given the same zlib).

    Example
    -------
    >>> build_fashion_mnist_subset(out_path="/tmp/subset.npz")  # doctest: +SKIP
    PosixPath('/tmp/subset.npz')
    """
    out = Path(out_path) if out_path is not None else data_root() / "fashion_mnist_subset.npz"
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, per_class in (("train", n_train_per_class), ("test", n_test_per_class)):
        images, labels = _fashion_split(split, Path(source_dir))
        chosen = [
            rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
            for c in range(len(FASHION_MNIST_CLASSES))
        ]
        index = np.sort(np.concatenate(chosen)).astype(np.int64)
        arrays |= {
            f"x_{split}": images[index],
            f"y_{split}": labels[index],
            f"index_{split}": index,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_npz(out, arrays)
    return out


# --------------------------------------------------------------------------------------------
# Labelled image sets
# --------------------------------------------------------------------------------------------
def _denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
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
        return _denormalize(x, self.mean, self.std)

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
            return (*_fashion_split(split, folder), FASHION_MNIST_CLASSES)
    if download:
        target = root if root is not None else data_root()
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            fetch(f"fashion_mnist/{prefix}-{kind}", target, download=True)
        return (*_fashion_split(split, target / "fashion-mnist"), FASHION_MNIST_CLASSES)
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


# --------------------------------------------------------------------------------------------
# ImageNet-style inputs: preprocessing, photographs, folders, class names
# --------------------------------------------------------------------------------------------
def preprocess_imagenet(
    img: np.ndarray, style: Style = "efficientnet_lite0", size: int = 224
) -> torch.Tensor:
    """Resize the shorter side to ``size * 256 / 224``, centre-crop ``size``, normalise.

    ``img`` is uint8, (H, W, 3) or (H, W) (grey is repeated to 3 channels). Resizing is
    bilinear with antialiasing on uint8 (torchvision ``transforms.v2.functional``, like PIL),
    deterministic. ``style="efficientnet_lite0"``: ``(x - 127) / 128`` on 0..255 pixels;
    ``style="torchvision"``: ``(x / 255 - mean) / std`` with the ImageNet
    mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). Returns (3, size, size) float32.

    Example
    -------
    >>> preprocess_imagenet(np.full((300, 400, 3), 127, np.uint8)).abs().max().item()
    0.0
    """
    from torchvision.transforms.v2 import functional as TF

    if style not in IMAGENET_NORMALIZATION:
        raise ValueError(f"style must be one of {list(IMAGENET_NORMALIZATION)}, got {style!r}")
    array = np.asarray(img)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(
            f"expected a uint8 (H, W, 3) or (H, W) image, got {array.dtype} {array.shape}"
        )
    array = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array[..., :3]
    x = torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, H, W) uint8, own copy
    x = TF.resize(x, [round(size * 256 / 224)], antialias=True)  # shorter side
    x = TF.center_crop(x, [size, size]).float()  # (3, size, size), 0..255
    if style == "efficientnet_lite0":
        return (x - 127.0) / 128.0
    mean, std = IMAGENET_NORMALIZATION[style]
    return (x / 255.0 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def denormalize_imagenet(x: torch.Tensor, style: Style = "efficientnet_lite0") -> torch.Tensor:
    """Undo :func:`preprocess_imagenet`'s normalisation: pixels in [0, 1] for display, clamped.

    Example
    -------
    >>> round(denormalize_imagenet(torch.zeros(3, 2, 2))[0, 0, 0].item() * 255, 3)
    127.0
    """
    mean, std = IMAGENET_NORMALIZATION[style]
    return _denormalize(x, mean, std)


@dataclass(frozen=True)
class Photo:
    """A real photograph that ships inside an installed package (read offline).

    ``group``: ``"object"`` (colour photograph of an ImageNet-like object), ``"grey object"``
    (grey-level photograph of an object, repeated over the three channels), ``"colour other"``
    (astronomy, medical, microscopy) or ``"texture"`` (grey-level close-ups).
    """

    name: str
    source: str  # the call that loads it
    licence: str  # as the shipping package documents it
    description: str
    group: str = "object"


# Every real photograph that scikit-image 0.26, scikit-learn and matplotlib ship (checked
# 2026-11-30), with the licence their docstrings or READMEs give. Left out: skimage's moon and
# page (no licence stated), cell (a phase image from a hologram, not a photograph), horse and
# logo (drawings), lfw_subset (25x25 crops, no licence), the right view of the motorcycle (the
# same scene as the left one), matplotlib's Minduka present (clip art). 19 photographs: fewer
# than 20, and only 8 of them are colour photographs of ImageNet-like objects.
PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in [
        Photo("chelsea", "skimage.data.chelsea()", "CC0 (Stefan van der Walt)", "Chelsea the cat"),
        Photo("coffee", "skimage.data.coffee()", "CC0 (Rachel Michetti)", "a cup of espresso"),
        Photo("astronaut", "skimage.data.astronaut()", "public domain (NASA)", "Eileen Collins"),
        Photo("rocket", "skimage.data.rocket()", "public domain (SpaceX)", "Falcon 9 launch"),
        Photo(
            "motorcycle",
            "skimage.data.stereo_motorcycle()[0]",
            "Middlebury 2014 stereo data set (Scharstein et al.)",
            "a motorcycle (left view)",
        ),
        Photo(
            "china",
            'sklearn.datasets.load_sample_image("china.jpg")',
            "CC BY 2.0 (danielbuechele on Flickr)",
            "a Chinese temple",
        ),
        Photo(
            "flower",
            'sklearn.datasets.load_sample_image("flower.jpg")',
            "CC BY 2.0 (vultilion on Flickr)",
            "a flower",
        ),
        Photo(
            "grace_hopper",
            'matplotlib.cbook.get_sample_data("grace_hopper.jpg")',
            "public domain (U.S. Navy official photograph)",
            "Grace Hopper in uniform",
        ),
        Photo(
            "camera",
            "skimage.data.camera()",
            "CC0 (Lav Varshney)",
            "a photographer with a camera on a tripod",
            "grey object",
        ),
        Photo(
            "coins",
            "skimage.data.coins()",
            "no known copyright restrictions (Brooklyn Museum)",
            "Greek coins from Pompeii",
            "grey object",
        ),
        Photo(
            "clock",
            "skimage.data.clock()",
            "public domain (Stefan van der Walt)",
            "a wall clock, motion blurred",
            "grey object",
        ),
        Photo(
            "text",
            "skimage.data.text()",
            "public domain (Wikipedia File:Corner.png)",
            "a sign with text",
            "grey object",
        ),
        Photo(
            "hubble_deep_field",
            "skimage.data.hubble_deep_field()",
            "public domain (NASA)",
            "Hubble eXtreme Deep Field",
            "colour other",
        ),
        Photo(
            "retina",
            "skimage.data.retina()",
            "CC0 (Mikael Haggstrom, Wikimedia Commons)",
            "fundus photograph of a retina",
            "colour other",
        ),
        Photo(
            "immunohistochemistry",
            "skimage.data.immunohistochemistry()",
            "no known copyright restrictions (CMMI)",
            "stained colonic glands (microscope)",
            "colour other",
        ),
        Photo(
            "microaneurysms",
            "skimage.data.microaneurysms()",
            "CC0 (Andreas Maier, HRF database)",
            "retina detail with lesions (green channel)",
            "colour other",
        ),
        Photo("brick", "skimage.data.brick()", "CC0 (CC0Textures)", "a brick wall", "texture"),
        Photo(
            "grass", "skimage.data.grass()", "CC0 (linolafett on DeviantArt)", "grass", "texture"
        ),
        Photo("gravel", "skimage.data.gravel()", "CC0 (CC0Textures)", "gravel", "texture"),
    ]
}
#: The colour photographs of ImageNet-like objects (``group == "object"``): the default of
#: ``prunegrad-lite explain`` and of the notebooks' examples.
OBJECT_PHOTOS: tuple[str, ...] = tuple(n for n, p in PHOTOS.items() if p.group == "object")


def load_photo(name: str) -> np.ndarray:
    """The photograph ``name`` of :data:`PHOTOS` as uint8, read offline.

    (H, W, 3) for colour photographs, (H, W) for grey-level ones (:func:`preprocess_imagenet`
    repeats them over the three channels).

    Example
    -------
    >>> load_photo("coffee").shape
    (400, 600, 3)
    """
    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; known photos: {', '.join(PHOTOS)}")
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"))
    if name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as image:
            return np.asarray(image.convert("RGB"))
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return np.asarray(getattr(skimage.data, name)())


def load_photos(
    names: Sequence[str] | None = None, size: int = 224, preprocess: Style = "efficientnet_lite0"
) -> tuple[torch.Tensor, list[str]]:
    """Photographs (default: all of :data:`PHOTOS`) preprocessed for an ImageNet model.

    Returns a (N, 3, size, size) float32 tensor and the names, in order; see
    :func:`preprocess_imagenet` for the two styles and :func:`denormalize_imagenet` to display.

    Example
    -------
    >>> x, names = load_photos(["coffee"])
    >>> tuple(x.shape), names
    ((1, 3, 224, 224), ['coffee'])
    """
    names = list(PHOTOS) if names is None else list(names)
    images = [preprocess_imagenet(load_photo(n), preprocess, size) for n in names]
    return torch.stack(images), names


def _folder_transform(image: Any, style: Style, size: int) -> torch.Tensor:
    return preprocess_imagenet(np.asarray(image.convert("RGB")), style, size)


def load_image_folder(
    path: str | os.PathLike,
    preprocess: Style | Callable[[Any], torch.Tensor] = "torchvision",
    size: int = 224,
) -> torch.utils.data.Dataset:
    """An ImageNet-style folder (``path/<class>/<image>``) as a lazy ``ImageFolder`` dataset.

    Images are read when indexed, so a 50,000-image validation set fits in memory; items are
    ``(image (3, size, size) float32, class index)``. ``preprocess`` is a style of
    :func:`preprocess_imagenet` or any callable on a PIL image. Classes are the sub-folder
    names in sorted order (``dataset.classes``). ImageNet cannot be downloaded for you
    (licence): get it from https://image-net.org.

    Example
    -------
    >>> folder = load_image_folder("~/imagenet/val")  # doctest: +SKIP
    >>> image, label = folder[0]  # doctest: +SKIP
    """
    from torchvision.datasets import ImageFolder

    folder = Path(path).expanduser()
    if not callable(preprocess) and preprocess not in IMAGENET_NORMALIZATION:
        raise ValueError(f"preprocess must be one of {list(IMAGENET_NORMALIZATION)} or a callable")
    transform = (
        preprocess
        if callable(preprocess)
        else functools.partial(_folder_transform, style=preprocess, size=size)
    )
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} does not exist. Arrange images as "
            f"{folder}/<class name>/<image>.JPEG (ImageNet: https://image-net.org)."
        )
    try:
        return ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, OSError) as err:
        raise DataError(
            f"no images in class sub-folders of {folder}: {err}. Arrange images as "
            f"{folder}/<class name>/<image>.JPEG."
        ) from err


@functools.lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    text = resources.files("prunegrad_lite").joinpath("resources/imagenet_classes.txt").read_text()
    names = tuple(text.splitlines())
    if len(names) != 1000:
        raise DataError(
            f"prunegrad_lite/resources/imagenet_classes.txt has {len(names)} lines, "
            "not 1000: reinstall the package"
        )
    return names


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (torchvision's names, shipped).

    Example
    -------
    >>> imagenet_classes()[967]
    'espresso'
    """
    return list(_imagenet_classes())
