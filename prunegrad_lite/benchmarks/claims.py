"""How a claim of the paper is checked on our results: paired comparisons and verdicts.

A claim (:class:`Claim`; the claims themselves are in :mod:`.paper`) is a set of **paired
comparisons** on the same units (images; for ROAR seeds x test images; for the sanity checks
weight draws x images), each with its 95% bootstrap interval
(:func:`~prunegrad_lite.benchmarks.stats.paired_difference`, BCa over images, percentile over
seeds x images) and a three-valued verdict:

* a comparison **AGREES** when its interval lies wholly on the claimed side of 0, **DISAGREES**
  when it lies wholly on the other side, and is **NOT RESOLVED** when it contains 0;
* a claim made of several comparisons ("PruneGrad is lower than A, B and C", "X is the lowest")
  **AGREES** only when every comparison agrees; it **DISAGREES** as soon as one comparison
  disagrees (a resolved counter-example); otherwise (some not resolved, none disagreeing) it is
  **NOT RESOLVED**;
* **NOT CHECKED**: the methods it needs were not run, or the result holds no per-unit values
  (a file from before they were stored; ROAR then falls back to its per-seed accuracies in
  ``settings["cells"]``, seeds as the units).

Pixel-perturbation claims are checked under every replacement the run used (the ranking can
move with the replacement), sanity claims under every re-initialisation, both with maps that
became constant counted as 0 and with them left out (:func:`conditions`).

Example
-------
>>> compare(pixel_result, "prunegrad", "gradient", "lerf@1%", "lower", conditions(pixel_result)[0])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from prunegrad_lite.benchmarks.results import BenchmarkResult, area_under_curve
from prunegrad_lite.benchmarks.stats import (
    AGREES,
    DISAGREES,
    NOT_RESOLVED,
    interval_text,
    paired_difference,
)

__all__ = [
    "NOT_CHECKED",
    "RESAMPLES",
    "Claim",
    "Comparison",
    "Condition",
    "Outcome",
    "combine",
    "compare",
    "conditions",
    "outcome_of",
    "values_for",
    "within",
]

NOT_CHECKED = "NOT CHECKED"
#: bootstrap resamples of each comparison (fixed seed 0: the verdicts are reproducible)
RESAMPLES = 4000


@dataclass(frozen=True)
class Condition:
    """Under which protocol variant a claim is checked: a label and the names it maps to."""

    label: str  # e.g. "replacement 'mean'", "init 'reset', constant maps left out"
    variant_suffix: str = ""  # "" or "_blur", "_reset", ...
    metric_suffix: str = ""  # "" or "_defined" (sanity: constant maps left out)


@dataclass(frozen=True)
class Comparison:
    """One paired comparison ``a - b`` (``b`` may name a fixed reference such as "0.99")."""

    a: str
    b: str
    what: str  # "lerf@1%", "spearman_abs@top", ...
    claim: str  # "lower" / "higher" / "within ±0.15"
    difference: float
    low: float
    high: float
    n: int
    seeds: int
    verdict: str

    def describe(self) -> str:
        if not math.isfinite(self.difference):
            return f"{self.a} vs {self.b}: no finite paired values (n={self.n})"
        interval = interval_text(self.difference, self.low, self.high, self.n, self.seeds)
        return f"{self.a} − {self.b} {interval}: {self.verdict}"


@dataclass(frozen=True)
class Outcome:
    """A claim's verdict under one condition, with the comparisons behind it."""

    verdict: str
    comparisons: tuple[Comparison, ...] = field(default_factory=tuple)
    note: str = ""

    def evidence(self) -> str:
        parts = [c.describe() for c in self.comparisons]
        return "; ".join(([self.note] if self.note else []) + parts)


@dataclass(frozen=True)
class Claim:
    """One qualitative claim of the follow-up paper, checked on our results.

    ``check(result, condition)`` returns an :class:`Outcome` (verdict and the paired comparisons
    behind it) or None when the methods or per-unit values it needs are missing.
    """

    benchmark: str
    text: str  # the claim as the paper makes it
    paper: str  # the authors' numbers behind it (CVPR 2021 follow-up)
    check: Callable[[BenchmarkResult, Condition], Outcome | None]


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of comparisons: any DISAGREES -> DISAGREES; else any NOT RESOLVED -> NOT
    RESOLVED; else AGREES (every comparison agrees)."""
    if not verdicts:
        return NOT_CHECKED
    if DISAGREES in verdicts:
        return DISAGREES
    if NOT_RESOLVED in verdicts:
        return NOT_RESOLVED
    return AGREES


def _step(result: BenchmarkResult, metric: str, variant: str, x: float | None) -> int:
    """The step of the point at ``x`` on a curve (None: the last step)."""
    points = sorted(
        {(p.step, p.x) for p in result.curves if (p.metric, p.variant) == (metric, variant)}
    )
    if not points:
        raise KeyError(f"no curve {metric}/{variant}")
    if x is None:
        return points[-1][0]
    for step, px in points:
        if math.isclose(px, x, rel_tol=1e-9, abs_tol=1e-12):
            return step
    raise KeyError(f"no point at x={x} on {metric}/{variant}")


def _roar_seed_values(result: BenchmarkResult, method: str, fraction: float) -> np.ndarray | None:
    """Per-seed accuracies (S,) from ``settings["cells"]`` (the fallback without units)."""
    cells = result.settings.get("cells") or []
    rows = sorted(
        (c["seed"], c["test_accuracy"])
        for c in cells
        if c.get("method") == method
        and c.get("variant", "roar") == "roar"
        and math.isclose(float(c.get("fraction", -1)), fraction)
    )
    return np.array([v for _, v in rows], dtype=np.float64) if rows else None


def _fraction(label: str) -> float:
    return float(label.rstrip("%")) / 100


def values_for(
    result: BenchmarkResult, method: str, what: str, cond: Condition
) -> np.ndarray | None:
    """The per-unit values behind a score name under a condition, (S, N); None if not stored.

    Pixel: ``lerf@1%`` -> prob_change at that fraction, ``lerf_auc`` -> per-image area;
    sanity: ``spearman_abs@top`` / ``@all`` / ``@independent``; ROAR: ``acc@10%`` and
    ``roar_auc`` (per seed and test image, the area under its correctness curve).
    """
    if method not in result.methods:
        return None
    try:
        if result.benchmark == "pixel":
            if "@" in what:
                order, rest = what.split("@")
                variant = order + cond.variant_suffix
                step = _step(result, "prob_change", variant, _fraction(rest))
                return result.unit_values(method, "prob_change", variant, step)
            variant = what[: -len("_auc")] + cond.variant_suffix
            return result.unit_values(method, "prob_change_auc", variant, 0)
        if result.benchmark == "sanity":
            measure, tag = what.split("@")
            metric = measure + cond.metric_suffix
            if tag == "independent":
                return result.unit_values(method, metric, "independent" + cond.variant_suffix, -1)
            variant = "cascading" + cond.variant_suffix
            step = 1 if tag == "top" else _step(result, metric, variant, None)
            return result.unit_values(method, metric, variant, step)
        if result.benchmark == "roar":
            fractions = [float(f) for f in result.settings.get("fractions", [])]
            if what == "roar_auc":
                tables = [values_for(result, method, f"acc@{100 * f:g}%", cond) for f in fractions]
                if len(fractions) < 2 or any(t is None for t in tables):
                    return None
                stacked = np.stack(tables, axis=-1)  # (S, N, F)
                return area_under_curve(fractions, stacked, dim=-1).numpy()
            fraction = _fraction(what.split("@")[1])
            try:
                step = _step(result, "accuracy", "roar", fraction)
                return result.unit_values(method, "accuracy", "roar", step)
            except KeyError:
                seeds = _roar_seed_values(result, method, fraction)
                return None if seeds is None else seeds[None, :]  # seeds as the units
    except KeyError:
        return None
    return None


def compare(
    result: BenchmarkResult, a: str, b: str, what: str, claim: str, cond: Condition
) -> Comparison | None:
    va, vb = values_for(result, a, what, cond), values_for(result, b, what, cond)
    if va is None or vb is None or va.shape != vb.shape:
        return None
    c = paired_difference(va, vb, resamples=RESAMPLES, seed=0)
    return Comparison(
        a, b, what, claim, c.difference, c.low, c.high, c.n, c.seeds, c.verdict(claim)
    )


def outcome_of(comps: Sequence[Comparison | None]) -> Outcome | None:
    kept = tuple(c for c in comps if c is not None)
    return Outcome(combine([c.verdict for c in kept]), kept) if kept else None


def within(
    result: BenchmarkResult, a: str, b: str, what: str, margin: float, cond: Condition
) -> Comparison | None:
    """Equivalence: AGREES when the interval of a - b lies inside ±margin, DISAGREES when it
    lies wholly outside, else NOT RESOLVED."""
    va, vb = values_for(result, a, what, cond), values_for(result, b, what, cond)
    if va is None or vb is None or va.shape != vb.shape:
        return None
    c = paired_difference(va, vb, resamples=RESAMPLES, seed=0)
    if c.n < 2 or not (math.isfinite(c.low) and math.isfinite(c.high)):
        verdict = NOT_RESOLVED
    elif -margin <= c.low and c.high <= margin:
        verdict = AGREES
    elif c.low > margin or c.high < -margin:
        verdict = DISAGREES
    else:
        verdict = NOT_RESOLVED
    return Comparison(
        a, b, what, f"within ±{margin:g}", c.difference, c.low, c.high, c.n, c.seeds, verdict
    )


def conditions(result: BenchmarkResult) -> list[Condition]:
    """The protocol variants a result's claims are checked under (see the module docstring)."""
    s = result.settings
    if result.benchmark == "pixel":
        reps = s.get("replacements") or [{"replacement": s.get("replacement", "mean")}]
        out = []
        for i, r in enumerate(reps):
            rep = r["replacement"]
            name = f"{rep:g}" if isinstance(rep, (int, float)) else str(rep)
            out.append(Condition(f"replacement {name!r}", "" if i == 0 else f"_{name}"))
        return out
    if result.benchmark == "sanity":
        out = []
        for i, init in enumerate(s.get("inits") or ["authors"]):
            suffix = "" if i == 0 else f"_{init}"
            out.append(Condition(f"init {init!r}, constant maps counted as 0", suffix, ""))
            out.append(Condition(f"init {init!r}, constant maps left out", suffix, "_defined"))
        return out
    return [Condition("")]
