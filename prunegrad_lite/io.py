"""Files: atomic writes, sha256 checksums, and model checkpoints.

The package's one way to write a file (:func:`atomic_write`: a crash never leaves half a file),
to checksum one (:func:`sha256_file`, :func:`sha256_bytes`), and to save and load a model's
weights (:func:`save_checkpoint`, :func:`load_checkpoint`, always ``weights_only=True``).
A bottom layer of the package (``docs/structure.md``): it imports nothing from it.

Example
-------
>>> path = save_checkpoint(model, "runs/model.pt", {"test_accuracy": 0.92})
>>> sha256_file(path)[:8]
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "atomic_write",
    "load_checkpoint",
    "save_checkpoint",
    "sha256_bytes",
    "sha256_file",
    "write_text",
]

CHECKPOINT_FORMAT = "prunegrad_lite.checkpoint/1"


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path`` for binary writing; on success it replaces ``path``
    (``os.replace``, atomic on one file system), on any error it is deleted and ``path`` untouched.

    Example
    -------
    >>> with atomic_write("runs/record.json") as f:
    ...     f.write(b"{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then
    ``os.replace``), creating the folder; return the path."""
    path = Path(path)
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))
    return path


# --------------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, gunzip: bool = False) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; ``gunzip=True``: of its decompressed bytes.

    A broken gzip stream raises ``gzip.BadGzipFile``, ``EOFError`` or ``zlib.error``.
    """
    digest = hashlib.sha256()
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    model: nn.Module | dict[str, torch.Tensor], path: str | os.PathLike, meta: dict | None = None
) -> Path:
    """Write ``{"format", "state_dict", "meta"}`` to ``path`` atomically; return the path.

    The state dict holds plain contiguous CPU tensors and ``meta`` must be JSON-able, so the file
    loads with ``torch.load(weights_only=True)``. The bytes go to a temporary file in the same
    folder, which replaces ``path`` only once complete (``os.replace``): a crash never leaves a
    partial checkpoint, and the temporary file is removed when writing fails.

    Example
    -------
    >>> save_checkpoint(model, "runs/model.pt", {"test_accuracy": 0.92})
    PosixPath('runs/model.pt')
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    state_dict = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    try:
        meta = json.loads(json.dumps(meta or {}))  # plain dict/list/str/number only
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {err}") from err
    payload = {"format": CHECKPOINT_FORMAT, "state_dict": state_dict, "meta": meta}
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Example
    -------
    >>> ckpt = load_checkpoint("data/fashion_resnet.pt")
    >>> model.load_state_dict(ckpt.state_dict, strict=True)
    """
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a prunegrad_lite checkpoint ({CHECKPOINT_FORMAT})")
    return Checkpoint(state_dict=payload["state_dict"], meta=payload.get("meta", {}))
