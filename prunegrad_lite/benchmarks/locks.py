"""Per-cell locks of the benchmark cache: one advisory ``flock`` on ``<file>.lock`` per cell
being computed, so that two processes on the same cache folder share the work (see
:mod:`.cache`, which takes and releases them, and ``PRUNEGRAD_LITE_LOCK_TIMEOUT``).

A process holds at most one lock per *kind* of cell; taking another cell of the same kind
releases the first (its computation raised). The kernel releases every lock when the process
ends, also when it is killed. No locking on systems without ``fcntl``.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:  # POSIX advisory locks; released by the kernel when the process ends
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_TIMEOUT_ENV", "CacheWarning", "locked_elsewhere", "release_all"]

LOCK_TIMEOUT_ENV = "PRUNEGRAD_LITE_LOCK_TIMEOUT"


class CacheWarning(UserWarning):
    """A cached file was unreadable (and is recomputed), or a run waited for another process."""


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


class _Lock:
    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self.file: Any = None


_held: dict[str, _Lock] = {}  # kind -> the lock this process holds for a cell of that kind
_held_guard = threading.Lock()


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _release(kind: str) -> None:
    with _held_guard:
        lock = _held.pop(kind, None)
    if lock is not None and lock.file is not None:
        try:
            fcntl.flock(lock.file, fcntl.LOCK_UN)
        finally:
            lock.file.close()


def release_all(kinds: Sequence[str] | None = None) -> None:
    """Release the locks this process holds (of ``kinds``; None: all) after a cell's
    computation raised, so that its retry, here or in another process, does not wait for them
    (the executors call it; a killed process's locks are released by the kernel)."""
    with _held_guard:
        held = [k for k in _held if kinds is None or k in kinds]
    for kind in held:
        _release(kind)


def _acquire(path: Path, kind: str) -> bool:
    """Hold the lock of ``path``; return True when another process held it (we waited)."""
    if fcntl is None:
        return False
    with _held_guard:
        current = _held.get(kind)
    if current is not None:
        if current.path == path:
            return False  # already ours (a retry after an error)
        _release(kind)  # a cell of this kind whose computation raised: free it
    lock_file = _lock_path(path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock_file, "a+")  # noqa: SIM115 - kept open while the lock is held
    waited = False
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        waited = True
        f.seek(0)
        holder = f.read().strip() or "another process"
        timeout = float(os.environ.get(LOCK_TIMEOUT_ENV, "3600"))
        _warn(
            f"{path} is being computed by {holder}: waiting for it (up to {timeout:.0f} s, "
            f"{LOCK_TIMEOUT_ENV}) to reuse its result instead of computing it twice"
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    f.close()
                    _warn(f"gave up waiting for the lock of {path}: computing it here as well")
                    return True
                time.sleep(0.5)
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {os.uname().nodename if hasattr(os, 'uname') else '?'}")
    f.flush()
    lock = _Lock(path, kind)
    lock.file = f
    with _held_guard:
        _held[kind] = lock
    return waited


def locked_elsewhere(path: str | os.PathLike) -> bool:
    """Is the cell at ``path`` being computed by another process right now (its lock held)?
    A probe that takes nothing: a caller with other cells to do can come back to it later
    instead of waiting (two processes on one cache folder then share the work)."""
    lock_file = _lock_path(Path(path))
    if fcntl is None or not lock_file.exists():
        return False
    with _held_guard:
        if any(lock.path == Path(path) for lock in _held.values()):
            return False  # ours
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False
