"""The registry of every data file the package reads, each checked against its sha256.

:data:`REGISTRY` lists each file (:class:`DataFile`: name, path under a data root, sha256, url,
licence); :func:`fetch` finds a registered file, checks its sha256 and returns its path, and
downloads it only when ``download=True`` is passed. A missing, corrupt or undownloadable file
raises :class:`DataError` saying which file, why, and how to get it.

Example
-------
>>> fetch("fashion_mnist_subset").name
'fashion_mnist_subset.npz'
"""

from __future__ import annotations

import gzip
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from prunegrad_lite.io import sha256_file

__all__ = [
    "CACHE_DIR",
    "DEBIAN_FASHION_MNIST_DIR",
    "ENV_VAR",
    "REGISTRY",
    "REPO_DATA_DIR",
    "SYSTEM_DATA_ROOTS",
    "DataError",
    "DataFile",
    "check_file",
    "data_root",
    "fetch",
    "register",
]

ENV_VAR = "PRUNEGRAD_LITE_DATA"
REPO_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"
CACHE_DIR = Path.home() / ".cache" / "prunegrad_lite"
# Read-only data roots searched after data_root(): Debian's dataset-* packages install here.
SYSTEM_DATA_ROOTS = (Path("/usr/share/datasets"),)
DEBIAN_FASHION_MNIST_DIR = SYSTEM_DATA_ROOTS[0] / "fashion-mnist"
FASHION_MNIST_URL = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # torchvision's mirror
)


class DataError(ValueError):
    """A data file is unknown, missing, corrupt, or could not be downloaded.

    The message names the file, says why, and says how to get it.
    """


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
        "(200 per class), uint8; built by scripts/build_fashion_mnist_subset.py (seed 0).",
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


def _sha256_cached(path: Path) -> str:
    """Hex sha256 of a file, of its decompressed bytes for ``.gz`` files (memoised)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = _sha256_uncached(path)
    return _VERIFIED[key]


def _sha256_uncached(path: Path) -> str:
    try:
        return sha256_file(path, gunzip=path.name.endswith(".gz"))
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        return f"<not a valid gzip file: {err}>"


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
    actual = _sha256_cached(path)
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
