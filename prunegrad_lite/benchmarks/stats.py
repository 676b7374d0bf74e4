"""Paired comparisons with bootstrap intervals, and the three-valued verdict every claim gets.

Two methods are always compared **on the same units** (the same images; for ROAR and the
sanity checks also the same seeds), so the statistic is the mean of the paired differences
``a - b``; its uncertainty is a 95% bootstrap interval over the units.

* One level of units (images): ``values`` of shape ``(N,)``. The interval is **BCa**
  (bias-corrected and accelerated, Efron 1987) by default, the method
  ``scipy.stats.bootstrap`` uses by default; ``"percentile"`` is selectable. Tests check both
  against ``scipy.stats.bootstrap`` on fixed data.
* Two crossed levels (seeds x images): ``values`` of shape ``(S, N)``, the same N images under
  each of the S seeds (weight draws, retraining seeds). Seeds and images are resampled
  independently (a two-way "crossed" bootstrap: a resample draws S seeds and N images with
  replacement and averages the S x N sub-table), so the interval carries both the draw-to-draw
  and the image-to-image spread. The interval is the **percentile** interval there (BCa's
  jackknife has no single natural form for a crossed design). With one seed it reduces to the
  one-level case.

The verdict on a claim "``a`` is lower (or higher) than ``b``" is

* ``AGREES`` when the whole interval lies on the claimed side of 0,
* ``DISAGREES`` when the whole interval lies on the other side,
* ``NOT RESOLVED`` when the interval contains 0 (or fewer than two units are finite).

Units where either side is NaN (an undefined value, e.g. a Spearman correlation with a constant
map) are dropped in pairs before the bootstrap; ``n`` counts the units kept.

Example
-------
>>> c = paired_difference(lerf_prunegrad, lerf_gradient)      # (N,) each, same images
>>> c.difference, c.low, c.high, c.n
>>> c.verdict("lower")                                         # "AGREES" / ... / "NOT RESOLVED"
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "AGREES",
    "DISAGREES",
    "NOT_RESOLVED",
    "VERDICTS",
    "PairedComparison",
    "bootstrap_interval",
    "interval_text",
    "paired_difference",
    "verdict",
]

AGREES = "AGREES"
DISAGREES = "DISAGREES"
NOT_RESOLVED = "NOT RESOLVED"
VERDICTS = (AGREES, DISAGREES, NOT_RESOLVED)
INTERVALS = ("bca", "percentile")


@dataclass(frozen=True)
class PairedComparison:
    """The mean paired difference ``a - b`` with its bootstrap interval."""

    difference: float  # mean of a - b over the kept units
    low: float  # lower end of the interval
    high: float  # upper end of the interval
    n: int  # units (images) kept: both values finite
    seeds: int  # seeds (1 for one-level data)
    confidence: float  # e.g. 0.95
    interval: str  # "bca" or "percentile"
    resamples: int  # bootstrap resamples
    seed: int  # the bootstrap's own seed

    def verdict(self, claim: str) -> str:
        """Verdict on the claim that ``a`` is ``claim`` ("lower" or "higher") than ``b``."""
        return verdict(self.low, self.high, claim, self.n)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, digits: int = 3) -> str:
        """``"-0.012 [-0.020, -0.004], n=500"`` (95% interval; seeds shown when > 1)."""
        if not math.isfinite(self.difference):
            return f"n/a (n={self.n})"
        return interval_text(self.difference, self.low, self.high, self.n, self.seeds, digits)


def interval_text(
    difference: float, low: float, high: float, n: int, seeds: int = 1, digits: int = 3
) -> str:
    """``"-0.012 [-0.020, -0.004], n=500"``: a difference, its interval and its units (the
    seeds too when there are several)."""
    units = f"n={n}" + (f" x {seeds} seeds" if seeds > 1 else "")
    return f"{difference:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}], {units}"


def verdict(low: float, high: float, claim: str, n: int = 2) -> str:
    """Three-valued verdict on "``a`` is ``claim`` than ``b``" from the interval of ``a - b``.

    Example
    -------
    >>> verdict(-0.3, -0.1, "lower"), verdict(-0.3, 0.1, "lower"), verdict(0.1, 0.3, "lower")
    ('AGREES', 'NOT RESOLVED', 'DISAGREES')
    """
    if claim not in ("lower", "higher"):
        raise ValueError(f"claim must be 'lower' or 'higher', got {claim!r}")
    if n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return NOT_RESOLVED
    below, above = high < 0, low > 0
    if claim == "lower":
        return AGREES if below else DISAGREES if above else NOT_RESOLVED
    return AGREES if above else DISAGREES if below else NOT_RESOLVED


def _as_table(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2:
        raise ValueError(
            f"values must be (N,) images or (S, N) seeds x images, got shape {v.shape}"
        )
    return v


def bootstrap_interval(
    values: Any,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    interval: str = "bca",
) -> tuple[float, float, float, int, int]:
    """Mean of ``values`` with its bootstrap interval: ``(mean, low, high, n, seeds)``.

    ``values``: (N,) or (S, N). Images (columns) with a non-finite value under any seed are
    dropped. ``interval``: "bca" (one level only; with S > 1 the percentile interval is used,
    see the module docstring) or "percentile". Deterministic for a given ``seed``.

    Example
    -------
    >>> mean, low, high, n, s = bootstrap_interval(np.arange(10.0))
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 100:
        raise ValueError(f"use at least 100 bootstrap resamples, got {resamples}")
    table = _as_table(values)
    table = table[:, np.isfinite(table).all(axis=0)]
    seeds, n = table.shape
    if n == 0:
        return math.nan, math.nan, math.nan, 0, seeds
    mean = float(table.mean())
    if n < 2 and seeds < 2:
        return mean, math.nan, math.nan, n, seeds
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    if seeds == 1:
        row = table[0]
        stats = _resampled_means(row, resamples, rng)
        if interval == "bca":
            low, high = _bca(row, stats, alpha)
        else:
            low, high = np.quantile(stats, [alpha, 1 - alpha])
        return mean, float(low), float(high), n, seeds
    # crossed bootstrap: S seeds and N images drawn independently, in chunks to bound memory
    stats = np.empty(resamples)
    chunk = max(1, min(resamples, 2_000_000 // max(1, seeds * n)))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        rows = rng.integers(0, seeds, size=(b, seeds))  # (B, S)
        cols = rng.integers(0, n, size=(b, n))  # (B, N)
        # mean over the S x N sub-table = mean over drawn seeds of (mean over drawn images)
        per_seed = table[rows][
            np.arange(b)[:, None, None], np.arange(seeds)[None, :, None], cols[:, None, :]
        ]  # (B, S, N)
        stats[start : start + b] = per_seed.mean(axis=(1, 2))
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return mean, float(low), float(high), n, seeds


def _resampled_means(row: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    n = len(row)
    out = np.empty(resamples)
    chunk = max(1, min(resamples, 4_000_000 // n))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        out[start : start + b] = row[rng.integers(0, n, size=(b, n))].mean(axis=1)
    return out


def _bca(row: np.ndarray, stats: np.ndarray, alpha: float) -> tuple[float, float]:
    """BCa endpoints (Efron & Tibshirani 1993, ch. 14) for the mean of ``row``."""
    theta = row.mean()
    below = (stats < theta).mean() + 0.5 * (stats == theta).mean()
    if below <= 0 or below >= 1:  # all resamples on one side: no correction is possible
        return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))
    z0 = ndtri(below)
    n = len(row)
    jack = (row.sum() - row) / (n - 1)  # leave-one-out means
    d = jack.mean() - jack
    denom = 6.0 * (d**2).sum() ** 1.5
    a = (d**3).sum() / denom if denom > 0 else 0.0
    ends = []
    for q in (alpha, 1 - alpha):
        z = ndtri(q)
        adj = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
        ends.append(float(np.quantile(stats, adj)))
    return ends[0], ends[1]


def paired_difference(
    a: Any,
    b: Any,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    interval: str = "bca",
) -> PairedComparison:
    """Mean paired difference ``a - b`` with its bootstrap interval.

    ``a`` and ``b``: the same units in the same order, (N,) images or (S, N) seeds x images.
    See the module docstring for the interval and for NaN handling.

    Example
    -------
    >>> c = paired_difference([0.1, 0.2, 0.3], [0.2, 0.4, 0.3])
    >>> c.verdict("lower")
    """
    ta, tb = _as_table(a), _as_table(b)
    if ta.shape != tb.shape:
        raise ValueError(
            f"a and b must hold the same units in the same order; shapes {ta.shape} != {tb.shape}"
        )
    mean, low, high, n, seeds = bootstrap_interval(
        ta - tb, confidence=confidence, resamples=resamples, seed=seed, interval=interval
    )
    used = interval if seeds == 1 else "percentile"
    return PairedComparison(mean, low, high, n, seeds, confidence, used, resamples, seed)
