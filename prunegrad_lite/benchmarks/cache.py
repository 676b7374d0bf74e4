"""The benchmark cache: validated reads, checksummed atomic writes and per-cell locks.

Everything a benchmark run caches on disk (ROAR's retrained cells and pixel ranks, reproduce's
finished results) goes through here, so that a damaged cache never ends a run with a bare
``json`` or ``torch.load`` error and never feeds it a wrong value:

* **Writes** are atomic (temporary file, then ``os.replace``) and carry a schema version and a
  SHA-256 checksum of their content: JSON files as a ``"_cache"`` entry beside the payload,
  ``.pt`` files as a small dict around the tensor.
* **Reads** validate the file: it parses, has the schema, the checksum matches and the keys (or
  the tensor's shape and values) are what the caller needs. A file that fails is treated as
  missing: a :class:`CacheWarning` names it and says why, and the caller recomputes and
  overwrites it. Files written before checksums existed are accepted when they pass the
  content checks.
* **Locks**: :func:`load_json_cell` / :func:`store_json_cell` (and the tensor pair) hold an
  advisory ``flock`` on ``<file>.lock`` while the cell is computed, so a second process on
  the same ``--out`` waits for the first (it says so, naming the file and the other process)
  and then reuses its result instead of doing the work again. A lock is released when its
  cell is stored, when the process ends (also when killed) or when the same process starts
  another cell of the same kind (a computation that raised). After ``PRUNEGRAD_LITE_LOCK_TIMEOUT``
  seconds (default 3600) of waiting, the waiter computes the cell itself (the writes stay
  atomic, so the worst case is duplicated work). No locking on systems without ``fcntl``.
* :func:`heal` checks every cached file under a folder and deletes the unreadable ones (with a
  warning naming each), so a damaged file that no run reads any more does not stay behind.

Example
-------
>>> record = load_json_cell(path, required=("test_accuracy",))   # None: compute it
>>> if record is None:
...     record = {"test_accuracy": train_and_test()}
...     store_json_cell(path, record)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.locks import (
    LOCK_TIMEOUT_ENV,
    CacheWarning,
    _acquire,
    _release,
    _warn,
    locked_elsewhere,
)
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.io import atomic_write, sha256_bytes, write_text


__all__ = [
    "LOCK_TIMEOUT_ENV",
    "SCHEMA",
    "CacheWarning",
    "cache_key",
    "check_ranks",
    "heal",
    "load_json_cell",
    "load_result_cell",
    "load_tensor_cell",
    "locked_elsewhere",
    "read_json",
    "read_tensor",
    "setup_hash",
    "store_json_cell",
    "store_result_cell",
    "store_tensor_cell",
    "write_json",
    "write_tensor",
]

SCHEMA = 1
_META = "_cache"  # the key of a JSON file's schema and checksum


def _canonical(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def cache_key(*parts: Any) -> str:
    """16 hex digits naming a cached cell by everything it depends on (``parts``, as JSON; an
    object JSON cannot hold by its ``repr``): a changed setting gives a new file."""
    return sha256_bytes(json.dumps(parts, sort_keys=True, default=repr).encode())[:16]


def _digest_into(digest: Any, tensor: Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    digest.update(str((tuple(t.shape), str(t.dtype))).encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def setup_hash(model: nn.Module, *tensors: Tensor, extra: Any = None) -> str:
    """16 hex digits identifying a model's weights, some tensors and JSON-able ``extra``."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        _digest_into(digest, value)
    for t in tensors:
        _digest_into(digest, t)
    digest.update(json.dumps(extra, sort_keys=True, default=repr).encode())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------- JSON


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (a JSON object) atomically with its schema version and checksum."""
    if not isinstance(payload, dict) or _META in payload:
        raise ValueError(f"a cached JSON payload must be a dict without a {_META!r} key")
    record = {**payload, _META: {"schema": SCHEMA, "sha256": sha256_bytes(_canonical(payload))}}
    return write_text(path, json.dumps(record, indent=1) + "\n")


def _json_problem(path: Path, required: Sequence[str]) -> tuple[dict[str, Any] | None, str]:
    """(payload, "") for a valid file, else (None, why not)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, f"cannot be read ({err})"
    if not text.strip():
        return None, "is empty"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"is not valid JSON (truncated? {err})"
    if not isinstance(record, dict):
        return None, f"holds a JSON {type(record).__name__}, not an object"
    meta = record.pop(_META, None)
    if meta is not None:
        if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
            schema = meta.get("schema") if isinstance(meta, dict) else meta
            return None, f"has cache schema {schema!r}, this version reads {SCHEMA}"
        if meta.get("sha256") != sha256_bytes(_canonical(record)):
            return None, "does not match its checksum (changed or damaged on disk)"
    missing = [k for k in required if k not in record]
    if missing:
        return None, f"lacks {', '.join(map(repr, missing))}"
    return record, ""


def read_json(
    path: str | os.PathLike, required: Sequence[str] = (), *, quiet_missing: bool = True
) -> dict[str, Any] | None:
    """The payload of a cached JSON file, or None when it is missing or unreadable.

    An unreadable file (empty, truncated, not an object, wrong schema, checksum mismatch, a
    ``required`` key missing) gives a :class:`CacheWarning` naming it and why, and None: the
    caller recomputes it and overwrites it.
    """
    path = Path(path)
    if not path.is_file():
        if not quiet_missing:
            _warn(f"cache file {path} is missing")
        return None
    payload, problem = _json_problem(path, required)
    if payload is None:
        _warn(f"cache file {path} {problem}: ignoring it and computing it again")
    return payload


# ----------------------------------------------------------------------------------- tensors


def _tensor_digest(tensor: Tensor) -> str:
    t = tensor.detach().cpu().contiguous()
    return sha256_bytes(
        str((t.dtype, tuple(t.shape))).encode() + t.view(torch.uint8).numpy().tobytes()
    )


def write_tensor(path: str | os.PathLike, tensor: Tensor) -> Path:
    """Save ``tensor`` atomically with its schema version and checksum (``torch.save``)."""
    path = Path(path)
    payload = {"schema": SCHEMA, "sha256": _tensor_digest(tensor), "tensor": tensor.cpu()}
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def read_tensor(
    path: str | os.PathLike,
    *,
    shape: Sequence[int] | None = None,
    check: Callable[[Tensor], str] | None = None,
) -> Tensor | None:
    """A tensor saved by :func:`write_tensor` (or a bare saved tensor), or None.

    Loaded with ``weights_only=True``. Missing: None. Unreadable (truncated, not a tensor,
    wrong schema or checksum, another ``shape``, or ``check(tensor)`` returning a reason): a
    :class:`CacheWarning` naming the file and why, and None.
    """
    path = Path(path)
    if not path.is_file():
        return None
    problem = ""
    tensor = None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, ...: all mean "unreadable"
        first = (str(err).splitlines() or ["no message"])[0][:200]
        problem = f"cannot be loaded ({type(err).__name__}: {first})"
    else:
        if isinstance(obj, Tensor):
            tensor = obj  # written before checksums existed
        elif isinstance(obj, dict) and isinstance(obj.get("tensor"), Tensor):
            if obj.get("schema") != SCHEMA:
                problem = f"has cache schema {obj.get('schema')!r}, this version reads {SCHEMA}"
            elif obj.get("sha256") != _tensor_digest(obj["tensor"]):
                problem = "does not match its checksum (changed or damaged on disk)"
            else:
                tensor = obj["tensor"]
        else:
            problem = f"holds a {type(obj).__name__}, not a cached tensor"
    if tensor is not None and shape is not None and tuple(tensor.shape) != tuple(shape):
        problem, tensor = f"has shape {tuple(tensor.shape)}, expected {tuple(shape)}", None
    if tensor is not None and check is not None:
        reason = check(tensor)
        if reason:
            problem, tensor = reason, None
    if tensor is None:
        _warn(f"cache file {path} {problem}: ignoring it and computing it again")
    return tensor


def check_ranks(rank: Tensor) -> str:
    """'' when ``rank`` (N, P) holds a permutation of 0..P-1 in every row, else the reason."""
    if rank.ndim != 2 or rank.is_floating_point() or rank.dtype == torch.bool:
        return f"is not an integer (N, P) rank matrix ({rank.dtype}, shape {tuple(rank.shape)})"
    p = rank.shape[1]
    r = rank.long()
    if r.numel() and (int(r.min()) < 0 or int(r.max()) >= p):
        return f"holds ranks outside 0..{p - 1}"
    if r.numel() and not bool((r.sum(1) == p * (p - 1) // 2).all()):
        return "holds rows that are not permutations of the pixel ranks"
    return ""


def _load_cell(path: Path, kind: str, read: Callable[[], Any]) -> Any:
    value = read()
    if value is not None:
        return value
    if _acquire(path, kind):  # another process had it: it may have written it meanwhile
        value = read()
        if value is not None:
            _release(kind)
            print(f"reused {path}, computed by another process", file=sys.stderr)
            return value
    return None


def load_json_cell(
    path: str | os.PathLike, required: Sequence[str] = (), kind: str = "json"
) -> dict[str, Any] | None:
    """The cached payload at ``path`` when it is valid; else None, and this process now holds
    the cell's lock (waiting first while another process holds it, then rereading): compute
    the cell and :func:`store_json_cell` it."""
    path = Path(path)
    return _load_cell(path, kind, lambda: read_json(path, required))


def store_json_cell(path: str | os.PathLike, payload: dict[str, Any], kind: str = "json") -> Path:
    """:func:`write_json` the computed cell and release its lock."""
    try:
        return write_json(path, payload)
    finally:
        _release(kind)


def load_tensor_cell(
    path: str | os.PathLike,
    *,
    shape: Sequence[int] | None = None,
    check: Callable[[Tensor], str] | None = None,
    kind: str = "tensor",
) -> Tensor | None:
    """Like :func:`load_json_cell` for a tensor file (:func:`read_tensor`'s checks)."""
    path = Path(path)
    return _load_cell(path, kind, lambda: read_tensor(path, shape=shape, check=check))


def store_tensor_cell(path: str | os.PathLike, tensor: Tensor, kind: str = "tensor") -> Path:
    """:func:`write_tensor` the computed cell and release its lock."""
    try:
        return write_tensor(path, tensor)
    finally:
        _release(kind)


# ----------------------------------------------------------------------------------- healing


def heal(folder: str | os.PathLike) -> list[Path]:
    """Check every cached ``.json`` and ``.pt`` file under ``folder``; delete unreadable ones.

    Each deleted file gets a :class:`CacheWarning` naming it and why; returns their paths. A
    file being written is never seen half-written (writes are atomic renames).
    """
    root = Path(folder)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in (".json", ".pt"):
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CacheWarning)
            ok = (read_json(path) if path.suffix == ".json" else read_tensor(path)) is not None
        if not ok:
            why = str(caught[0].message) if caught else f"cache file {path} is unreadable"
            try:
                path.unlink()
            except OSError:
                pass
            removed.append(path)
            _warn(why.replace("ignoring it and computing it again", "deleted it"))
    return removed


# ----------------------------------------------------------------------------------- results

RESULT_KEYS = ("benchmark", "model", "methods", "curves", "scores", "settings")


def _read_result(path: Path) -> Any:
    payload = read_json(path, RESULT_KEYS)
    if payload is None:
        return None
    try:
        return BenchmarkResult.from_json(json.dumps(payload))
    except (KeyError, TypeError, ValueError) as err:
        _warn(f"cache file {path} is not a benchmark result ({err!r}): computing it again")
        return None


def load_result_cell(path: str | os.PathLike, kind: str = "result") -> Any:
    """A cached :class:`~prunegrad_lite.benchmarks.results.BenchmarkResult`, validated, or None
    (then this process holds the lock: compute it and :func:`store_result_cell` it)."""
    path = Path(path)
    return _load_cell(path, kind, lambda: _read_result(path))


def store_result_cell(path: str | os.PathLike, result: Any, kind: str = "result") -> Path:
    """Write a benchmark result (checksummed, atomically) and release its lock."""
    return store_json_cell(path, json.loads(result.to_json()), kind)
