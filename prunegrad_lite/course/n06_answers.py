"""Notebook 06's exercises: each answer computed and asserted (CI runs the notebook).

Used by ``notebooks/06_pixel_perturbation.ipynb`` (its solution cells); the lesson's own computations are in
:mod:`.n06_pixel_perturbation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from prunegrad_lite.benchmarks.claims import conditions, values_for
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.stats import PairedComparison, bootstrap_interval, paired_difference
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.n06_pixel_perturbation import perturbed_images

__all__ = [
    "MeanFillAnswer",
    "PairedLeadAnswer",
    "ReplacementAnswer",
    "mean_fill_answer",
    "paired_lead_answer",
    "replacement_answer",
]


@dataclass(frozen=True)
class MeanFillAnswer:
    """Exercise 1: how much LeRF's first removals change the input, per method (mean fill)."""

    fraction: float  # fraction removed (LeRF)
    delta_x: dict[str, float]  # method -> mean |x' - x| of the removed pixels, over the images
    change: dict[str, float]  # method -> mean |p - p'| / p
    near_zero: dict[str, float]  # method -> share of removed pixels with |x| < 0.1 already

    def __str__(self) -> str:
        rows = [f"{'method':<22} {'|Δx|':>6} {'|x|<0.1':>8} {'|p-pʹ|/p':>9}"]
        rows += [
            f"{m:<22} {self.delta_x[m]:>6.3f} {self.near_zero[m]:>8.0%} {self.change[m]:>9.3f}"
            for m in self.delta_x
        ]
        return f"LeRF at {self.fraction:.0%}, mean fill (0 in normalised space):\n" + "\n".join(
            rows
        )


def mean_fill_answer(
    model: nn.Module,
    images: Tensor,
    methods: Sequence[str] = ("gradient", "grad_x_input", "prunegrad"),
    fraction: float = 0.01,
    method_options: Mapping[str, dict] | None = None,
) -> MeanFillAnswer:
    """Grad x Input's least relevant pixels are those already near the fill value 0.

    Removes the ``fraction`` least relevant pixels of ``images`` by the mean (0) for each
    method and measures the input change ``|Δx|`` of the removed pixels. Asserts that
    "grad_x_input" (which must be among ``methods``, with "gradient") changes the input less
    than the gradient: ``x * g`` is small wherever ``x`` is, so its LeRF removes pixels that
    already hold (nearly) the replacement value.
    """
    options = {m: o for m, o in (method_options or {}).items() if m in methods}
    maps = method_maps(model, images, list(methods), options).maps
    out = perturbed_images(model, images, maps, fraction, "lerf", "mean")
    x = images.detach().float().cpu()
    near = {m: float((x.abs().amax(1)[out.masks[m]] < 0.1).double().mean()) for m in out.masks}
    delta = {m: float(np.nanmean(v)) for m, v in out.delta_x.items()}
    change = {m: float(np.mean(v)) for m, v in out.change.items()}
    assert delta["grad_x_input"] < delta["gradient"], "Grad x Input changes the input as much"
    return MeanFillAnswer(fraction, delta, change, near)


@dataclass(frozen=True)
class PairedLeadAnswer:
    """Exercise 2: one method's lead over another, unpaired and paired."""

    a: str
    b: str
    score: str  # e.g. "lerf@1%"
    mean_a: float
    mean_b: float
    interval_a: tuple[float, float]  # 95% bootstrap interval of a's mean alone
    interval_b: tuple[float, float]
    paired: PairedComparison  # a - b on the same images
    verdict: str  # on "a is lower than b"

    def __str__(self) -> str:
        return (
            f"{self.score}: {self.a} {self.mean_a:.4f} [{self.interval_a[0]:.4f}, "
            f"{self.interval_a[1]:.4f}], {self.b} {self.mean_b:.4f} [{self.interval_b[0]:.4f}, "
            f"{self.interval_b[1]:.4f}] (each mean alone)\n"
            f"paired, {self.a} - {self.b}: {self.paired.describe(4)}\n"
            f"verdict on '{self.a} is lower than {self.b}': {self.verdict}"
        )


def paired_lead_answer(
    result: BenchmarkResult, a: str = "prunegrad", b: str = "fullgrad", score: str = "lerf@1%"
) -> PairedLeadAnswer:
    """Is ``a``'s lower ``score`` than ``b``'s real? The paired interval says.

    Reads the per-image values of a pixel-perturbation ``result`` (its first replacement) and
    compares them with :func:`~prunegrad_lite.benchmarks.stats.paired_difference` (95% BCa
    interval over images), as the claims are checked. Asserts what holds at any size: the
    paired difference is the difference of the two means, and the verdict is AGREES only when
    the whole interval lies below 0, DISAGREES only when it lies above, else NOT RESOLVED.
    """
    cond = conditions(result)[0]
    va, vb = values_for(result, a, score, cond), values_for(result, b, score, cond)
    if va is None or vb is None:
        raise ValueError(f"{result.benchmark} result holds no per-image {score} of {a} and {b}")
    c = paired_difference(va, vb)
    mean_a, low_a, high_a, *_ = bootstrap_interval(va)
    mean_b, low_b, high_b, *_ = bootstrap_interval(vb)
    verdict = c.verdict("lower")
    assert abs(c.difference - (mean_a - mean_b)) < 1e-9
    assert (verdict == "AGREES") == (c.high < 0) and (verdict == "DISAGREES") == (c.low > 0)
    return PairedLeadAnswer(a, b, score, mean_a, mean_b, (low_a, high_a), (low_b, high_b), c,
                            verdict)  # fmt: skip


@dataclass(frozen=True)
class ReplacementAnswer:
    """Exercise 3: one method's LeRF under each replacement: input and output change."""

    method: str
    fraction: float
    delta_x: dict[str, float]  # replacement -> mean |Δx| of the removed pixels
    change: dict[str, float]  # replacement -> mean |p - p'| / p

    def __str__(self) -> str:
        rows = [
            f"  {r:<13} |Δx| {self.delta_x[r]:.3f}   |p - pʹ| / p {self.change[r]:.3f}"
            for r in self.delta_x
        ]
        return f"{self.method}, LeRF at {self.fraction:.0%}:\n" + "\n".join(rows)


def replacement_answer(
    model: nn.Module,
    images: Tensor,
    method: str = "prunegrad",
    fraction: float = 0.1,
    replacements: Sequence[str] = ("mean", "blur", "noisy_linear"),
) -> ReplacementAnswer:
    """The noisy linear imputation changes the removed pixels least: it rebuilds them.

    Removes the ``fraction`` least relevant pixels of ``method`` under each replacement.
    Asserts that the noisy linear imputation changes the input less than the mean fill
    (a least relevant pixel is mostly background, which its neighbours predict well).
    """
    maps = method_maps(model, images, [method]).maps
    out = {r: perturbed_images(model, images, maps, fraction, "lerf", r) for r in replacements}
    delta = {r: float(np.nanmean(o.delta_x[method])) for r, o in out.items()}
    change = {r: float(np.mean(o.change[method])) for r, o in out.items()}
    assert delta["noisy_linear"] < delta["mean"], "the imputation changes the input as much"
    return ReplacementAnswer(method, fraction, delta, change)
