"""Calibrating PruneGrad's sparsity: how many neurons to prune for a 15% change of the output.

The authors chose the sparsity per network so that pruning changes the target's softmax
probability by about 15% on average (docs/method.md section 1, "Sparsity"); every shipped model
carries the value :func:`calibrate_sparsity` found for it (``model.default_sparsity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.base import TargetLike, checked
from prunegrad_lite.attribution.outputs import relative_change, target_probability
from prunegrad_lite.attribution.pruning import (
    NeuronScores,
    apply_masks,
    check_sparsity,
    masks_from_scores,
    neuron_scores,
)
from prunegrad_lite.attribution.relu6 import CLIP_TREATMENTS, check_clip_treatment

__all__ = ["Calibration", "calibrate_sparsity"]


@dataclass
class Calibration:
    """Result of :func:`calibrate_sparsity`: the chosen sparsity and the whole curve."""

    sparsity: float  # the calibrated sparsity
    change: float  # mean relative probability change it gives
    target_change: float
    evaluated: list[tuple[float, float]]  # (sparsity, mean change) pairs, sorted by sparsity
    rule: str = "first crossing"  # how the sparsity was chosen (see calibrate_sparsity)
    per_sample: list[tuple[float, list[float]]] = field(default_factory=list, repr=False)

    @property
    def monotone(self) -> bool:
        """Whether the mean change never decreases along the evaluated sparsities."""
        changes = [c for _, c in self.evaluated]
        return all(b >= a for a, b in zip(changes, changes[1:]))

    def curve_table(self) -> str:
        """The whole curve as text: sparsity, mean change, and a mark at the chosen point."""
        rows = [f"{'sparsity':>9} {'mean |dp|/p':>12}"]
        for s, c in self.evaluated:
            mark = "  <- chosen" if s == self.sparsity else ""
            rows.append(f"{s:>9.4f} {c:>12.4f}{mark}")
        rows.append(
            f"target {self.target_change:g}; rule: {self.rule}; "
            f"curve {'monotone' if self.monotone else 'NOT monotone'}"
        )
        return "\n".join(rows)


def _changes(
    model: nn.Module,
    x: Tensor,
    scores: NeuronScores,
    sparsity: float,
    threshold: str,
    rule: str = "spec",
) -> Tensor:
    """Relative change of the target probability per sample, (N,), at one sparsity."""
    masks = masks_from_scores(scores, sparsity, threshold, rule)
    with torch.no_grad(), apply_masks(model, masks):
        pruned = model(x)  # (N, K)
    p = target_probability(scores.logits, scores.target)
    return relative_change(target_probability(pruned, scores.target), p).cpu()


def calibrate_sparsity(
    model: nn.Module,
    inputs: Tensor,
    target: TargetLike = None,
    target_change: float = 0.15,
    *,
    threshold: str = "global",
    scoring: str = "taylor",
    clip_treatment: str = "auto",
    tol: float = 0.002,
    max_sparsity: float = 0.999,
    grid: int = 20,
) -> Calibration:
    """The sparsity at which pruning changes the target probability by ``target_change`` on average.

    The change is relative, ``mean_n |p_c(x_n) - p_c^pruned(x_n)| / p_c(x_n)``, as in the
    authors' choice of 90% (VGG16) and 70-75% (ResNet50) for about 15%. Scores are computed once
    (with the same ``clip_treatment`` as :class:`PruneGrad`).

    Rule ("first crossing"), written for curves that need not be monotone (ReLU6 networks under
    the spec's rule): the curve is evaluated on a grid of ``grid`` sparsities ``k / grid`` plus
    ``max_sparsity``; the first grid point whose change reaches the target and the one before it
    bracket the crossing, which bisection refines to within ``tol``; the closer of the two ends
    is returned. The result is the smallest sparsity (to the grid's resolution) at which the
    change reaches the target; on a monotone curve that is the only crossing, as a plain
    bisection would find. If no point reaches the target, the point with the largest change is
    returned. ``evaluated`` holds the whole curve (``curve_table()`` prints it, ``monotone``
    says whether it was), ``per_sample`` the per-sample changes on the grid.

    Example
    -------
    >>> cal = calibrate_sparsity(model, x_val[:256])
    >>> cal.sparsity, cal.change; print(cal.curve_table())
    """
    if not 0.0 < target_change < 1.0:
        raise ValueError(f"target_change must be in (0, 1), got {target_change}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0 (the bisection's sparsity tolerance), got {tol}")
    check_sparsity(max_sparsity)
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    treatment = check_clip_treatment(clip_treatment, scoring)
    rule, straight_through = CLIP_TREATMENTS[treatment]
    with checked(model, inputs) as x:
        scores = neuron_scores(
            model,
            x,
            target,
            scoring,
            generator=torch.Generator().manual_seed(0),
            straight_through=straight_through,
        )
        evaluated: dict[float, float] = {}
        per_sample: dict[float, list[float]] = {}

        def change(s: float) -> float:
            if s not in evaluated:
                per = _changes(model, x, scores, s, threshold, rule)
                evaluated[s] = per.mean().item()
                per_sample[s] = per.tolist()
            return evaluated[s]

        points = sorted({round(k / grid, 6) for k in range(1, grid)} | {max_sparsity})
        points = [p for p in points if p <= max_sparsity]
        curve = [change(p) for p in points]  # the whole curve, always
        first = next((i for i, c in enumerate(curve) if c >= target_change), None)
        if first is None:
            best = max(points, key=change)
        else:
            lo, hi = (points[first - 1] if first > 0 else 0.0), points[first]
            if lo == 0.0:
                evaluated.setdefault(0.0, 0.0)
                per_sample.setdefault(0.0, [0.0] * x.shape[0])
            for _ in range(max(1, math.ceil(math.log2(max(hi - lo, tol) / tol)))):
                if hi - lo <= tol:
                    break
                mid = 0.5 * (lo + hi)
                if change(mid) < target_change:
                    lo = mid
                else:
                    hi = mid
            best = lo if abs(change(lo) - target_change) <= abs(change(hi) - target_change) else hi
        best = round(best, 4)
        change(best)  # the change reported is the one at the returned (rounded) sparsity
    return Calibration(
        best,
        evaluated[best],
        target_change,
        sorted(evaluated.items()),
        "first crossing",
        sorted(per_sample.items()),
    )
