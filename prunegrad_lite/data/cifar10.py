"""CIFAR-10: its constants, and its ``cifar-10-batches-py`` folder read by a safe pickle reader.

The reader unpickles dicts, lists and numpy arrays only (a data file must not run code) and
checks the structure (keys, shapes, label range) instead of the md5 of the original files, so it
also reads the tiny folders the tests write. :func:`~.datasets.load_dataset` turns the arrays
into normalised tensors.
"""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np

from prunegrad_lite.data.registry import ENV_VAR, DataError, data_root

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "cifar10_arrays"]

# Per-channel mean and std of the 50,000 CIFAR-10 training images. The std is the pixel std
# (0.247, 0.243, 0.261); the (0.2023, 0.1994, 0.2010) seen in many repositories is not.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


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


def cifar10_arrays(
    split: str, root: Path | None, download: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10 ``split`` as uint8 images (N, 3, 32, 32), labels (N,) and the class names, from
    the ``cifar-10-batches-py`` folder, read by our own pickle reader.

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
