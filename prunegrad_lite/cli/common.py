"""What every command shares: the program's name, and output paths checked before any work."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["DEBUG_ENV", "PROG", "check_writable_file", "check_writable_folder"]

PROG = "prunegrad-lite"
DEBUG_ENV = "PRUNEGRAD_LITE_DEBUG"  # "1": print the traceback of an error as well


def check_writable_folder(folder: Path, option: str = "--out") -> Path:
    """Create ``folder`` if needed and prove it takes a file (a real write, not ``os.access``,
    which says yes to root even on a read-only mount); raise a ``ValueError`` saying why not."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file, not a folder: give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"{option} {folder}: cannot write there ({err.strerror or err}): "
            "give a folder you can write to"
        ) from err
    return folder


def check_writable_file(path: Path, option: str = "--out", suffix: str | None = None) -> Path:
    """The output file ``path`` (``suffix`` appended when it has none), its folder checked for
    writability and the file itself, when it exists, for being a writable file."""
    path = Path(path).expanduser()
    if path.is_dir():
        example = path / f"out{suffix or ''}"
        raise ValueError(f"{option} {path} is a folder: give a file such as {example}")
    if suffix and not path.suffix:
        path = path.with_name(path.name + suffix)
    check_writable_folder(path.parent, option)
    if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: cannot overwrite it: give another path")
    return path
