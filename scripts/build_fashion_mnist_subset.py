"""Build ``data/fashion_mnist_subset.npz``, the class-balanced Fashion-MNIST subset that ships
with the package, from the original IDX gzip files (a maintenance tool, not part of the package).

Run from the repository root (the bytes are reproducible given the same zlib; the arrays always
are)::

    python scripts/build_fashion_mnist_subset.py /usr/share/datasets/fashion-mnist \\
        data/fashion_mnist_subset.npz

then put the new sha256 into the ``fashion_mnist_subset`` entry of
``prunegrad_lite/data/registry.py``. ``tests/test_data.py`` imports :func:`build` from this file
and checks that it rebuilds the shipped subset.
"""

from __future__ import annotations

import argparse
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from prunegrad_lite.data.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist_split
from prunegrad_lite.data.registry import DEBIAN_FASHION_MNIST_DIR, data_root
from prunegrad_lite.io import atomic_write

__all__ = ["build"]


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed zip timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buffer.getvalue()


def build(
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
    given the same zlib). The file is written atomically.

    Example
    -------
    >>> build(out_path="/tmp/subset.npz")  # doctest: +SKIP
    PosixPath('/tmp/subset.npz')
    """
    out = Path(out_path) if out_path is not None else data_root() / "fashion_mnist_subset.npz"
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, per_class in (("train", n_train_per_class), ("test", n_test_per_class)):
        images, labels = fashion_mnist_split(split, Path(source_dir))
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
    with atomic_write(out) as f:
        f.write(_npz_bytes(arrays))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_dir", nargs="?", type=Path, default=DEBIAN_FASHION_MNIST_DIR)
    parser.add_argument("out_path", nargs="?", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build(args.source_dir, args.out_path, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
