"""Paired bootstrap intervals and verdicts (prunegrad_lite.benchmarks.stats) against SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from prunegrad_lite.benchmarks.stats import (
    AGREES,
    DISAGREES,
    NOT_RESOLVED,
    bootstrap_interval,
    paired_difference,
    verdict,
)


@pytest.fixture
def skewed() -> np.ndarray:
    return np.random.default_rng(3).exponential(1.0, size=80)


@pytest.mark.parametrize("interval,scipy_method", [("bca", "BCa"), ("percentile", "percentile")])
def test_one_level_interval_matches_scipy(skewed, interval, scipy_method):
    mean, low, high, n, seeds = bootstrap_interval(
        skewed, resamples=40_000, seed=1, interval=interval
    )
    ref = sps.bootstrap(
        (skewed,), np.mean, n_resamples=40_000, method=scipy_method, random_state=2
    ).confidence_interval
    assert (n, seeds) == (80, 1)
    assert mean == pytest.approx(skewed.mean())
    # different random streams: the ends agree to Monte Carlo error (a few thousandths here)
    assert low == pytest.approx(ref.low, abs=0.02)
    assert high == pytest.approx(ref.high, abs=0.02)
    # BCa moves a right-skewed mean's interval to the right of the percentile one
    if interval == "bca":
        _, plow, phigh, _, _ = bootstrap_interval(
            skewed, resamples=40_000, seed=1, interval="percentile"
        )
        assert low > plow and high > phigh


def test_deterministic_for_a_seed(skewed):
    assert bootstrap_interval(skewed, seed=5) == bootstrap_interval(skewed, seed=5)
    assert bootstrap_interval(skewed, seed=5) != bootstrap_interval(skewed, seed=6)


def test_paired_difference_uses_the_pairing():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1.0, size=200)  # large image-to-image spread, shared by both methods
    a, b = base + 0.05, base.copy()
    c = paired_difference(a, b)
    assert c.difference == pytest.approx(0.05)
    assert c.low == pytest.approx(0.05) and c.high == pytest.approx(0.05)  # constant difference
    assert c.verdict("higher") == AGREES and c.verdict("lower") == DISAGREES
    # unpaired, the same 0.05 would drown in the spread of base: the pairing is what resolves it
    noisy = paired_difference(a, rng.permutation(b))
    assert noisy.verdict("higher") == NOT_RESOLVED


def test_nan_pairs_dropped():
    a = np.array([1.0, 2.0, math.nan, 4.0, 5.0])
    b = np.array([0.0, 1.0, 1.0, math.nan, 4.0])
    c = paired_difference(a, b, interval="percentile")
    assert c.n == 3 and c.difference == pytest.approx(1.0)


def test_two_level_crossed_bootstrap():
    rng = np.random.default_rng(1)
    seeds, n = 4, 300
    seed_effect = rng.normal(0, 0.2, size=(seeds, 1))  # draw-to-draw spread
    diff = 0.1 + seed_effect + rng.normal(0, 0.05, size=(seeds, n))
    c = paired_difference(diff, np.zeros_like(diff), resamples=4000)
    assert (c.n, c.seeds, c.interval) == (n, seeds, "percentile")
    assert c.difference == pytest.approx(diff.mean())
    # the interval carries the seed spread: much wider than the images-only interval
    one = paired_difference(diff.mean(axis=0), np.zeros(n), resamples=4000)
    assert (c.high - c.low) > 5 * (one.high - one.low)
    assert c.low < diff.mean() < c.high


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same units"):
        paired_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="seeds x images"):
        bootstrap_interval(np.zeros((2, 2, 2)))


@pytest.mark.parametrize(
    "low,high,claim,expected",
    [
        (-0.3, -0.1, "lower", AGREES),
        (0.1, 0.3, "lower", DISAGREES),
        (-0.1, 0.1, "lower", NOT_RESOLVED),
        (0.1, 0.3, "higher", AGREES),
        (-0.3, -0.1, "higher", DISAGREES),
        (math.nan, math.nan, "higher", NOT_RESOLVED),
    ],
)
def test_verdict(low, high, claim, expected):
    assert verdict(low, high, claim) == expected


def test_too_few_units_not_resolved():
    c = paired_difference([1.0], [0.0])
    assert c.n == 1 and c.verdict("higher") == NOT_RESOLVED
    assert "n=1" in c.describe()
