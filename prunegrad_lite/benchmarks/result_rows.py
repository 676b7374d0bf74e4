"""The rows of a benchmark result: curve points, scores, and the keys of the per-unit tables.

A :class:`~.results.BenchmarkResult` holds tidy rows: one :class:`CurvePoint` per method,
metric, variant and x position (a mean over units with its spread), and a few :class:`Score` rows
per method that summarise its curves. The per-unit values behind each curve point are one (S, N)
table per :func:`unit_key` (S seeds by N images or test examples), stored by
:func:`unit_table` as nested lists with ``None`` for NaN (JSON has no NaN) and read back by
:func:`unit_array`.

Example
-------
>>> unit_key("prunegrad", "prob_change", "lerf", 3)
'prunegrad/prob_change/lerf/3'
>>> unit_table([0.5, float("nan")])
[[0.5, None]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["CurvePoint", "Score", "float_or_nan", "unit_array", "unit_key", "unit_table"]


@dataclass(frozen=True)
class CurvePoint:
    """One point of one method's curve: a mean over images (or seeds) with its spread."""

    method: str  # registry name of the attribution method
    metric: str  # what is measured: "prob_change", "accuracy", "spearman_abs", "ssim", ...
    variant: str  # protocol variant: "lerf"/"morf", "roar", "cascading"/"independent"
    step: int  # 0-based position along the curve
    x: float  # fraction of pixels removed, or randomisation stage index
    label: str  # x as a reader sees it: "10%", "fc", "original"
    mean: float
    std: float  # sample std (ddof=1) over the n units; 0 when n == 1
    n: int  # images or seeds with a finite value


@dataclass(frozen=True)
class Score:
    """One number that summarises a method's curve, e.g. ``"lerf_auc"`` or ``"lerf@1%"``."""

    method: str
    name: str
    mean: float
    std: float  # sample std over images or seeds; 0 when n == 1
    n: int
    better: str = ""  # "lower", "higher", or "" when neither direction is better


def unit_key(method: str, metric: str, variant: str, step: int) -> str:
    """The key of one per-unit table in :attr:`BenchmarkResult.units`:
    ``"{method}/{metric}/{variant}/{step}"``."""
    for name, part in (("method", method), ("metric", metric), ("variant", variant)):
        if "/" in str(part):
            raise ValueError(f"{name} {part!r} must not contain '/' (it separates the key)")
    return f"{method}/{metric}/{variant}/{int(step)}"


def unit_table(values: Any) -> list[list[float | None]]:
    """An (S, N) table as nested lists with NaN -> None; a 1-D input is one row (S = 1)."""
    arr = np.asarray(
        values.detach().cpu().double().numpy() if isinstance(values, Tensor) else values,
        dtype=np.float64,
    )
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"unit values must be (N,) or (S, N), got shape {tuple(arr.shape)}")
    return [[float(v) if math.isfinite(v) else None for v in row] for row in arr.tolist()]


def float_or_nan(value: Any) -> float:
    """A stored number back as a float: ``None`` (JSON's stand-in for NaN) is NaN."""
    return math.nan if value is None else float(value)


def unit_array(table: list[list[float | None]]) -> np.ndarray:
    """The inverse of :func:`unit_table`: the (S, N) float64 array, NaN where ``None``."""
    return np.array([[float_or_nan(v) for v in row] for row in table], dtype=np.float64).reshape(
        len(table), -1
    )
