"""How a benchmark summarises its units: mean and sample std of the finite values, and the area
under a curve.

A curve point is the mean over units (images, or training seeds for ROAR) with the **sample
standard deviation** (``ddof=1``), 0 when there is one unit; NaN values (e.g. a rank correlation
with a constant map) are left out of the mean and of ``n`` (:func:`mean_std`). A score is often
the area under a curve divided by the x range, i.e. the curve's mean height
(:func:`area_under_curve`).

Example
-------
>>> mean_std(torch.tensor([1.0, 3.0, float("nan")]))
(tensor(2., dtype=torch.float64), tensor(1.4142, dtype=torch.float64), tensor(2))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["area_under_curve", "mean_std"]


def mean_std(values: Tensor | np.ndarray, dim: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, sample std (``ddof=1``, 0 for one value) and count of the finite values along ``dim``.

    NaNs are left out (a NaN marks an undefined value, e.g. Spearman with a constant map); the
    mean of no finite value is NaN.

    Example
    -------
    >>> mean_std(torch.tensor([1.0, 3.0, float("nan")]))
    (tensor(2., dtype=torch.float64), tensor(1.4142, dtype=torch.float64), tensor(2))
    """
    v = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values)
    v = v.detach().to("cpu", torch.float64)
    finite = torch.isfinite(v)
    n = finite.sum(dim)
    zeroed = torch.where(finite, v, torch.zeros_like(v))
    mean = zeroed.sum(dim) / n.clamp_min(1)
    mean = torch.where(n > 0, mean, torch.full_like(mean, math.nan))
    dev = torch.where(finite, v - mean.unsqueeze(dim), torch.zeros_like(v))
    var = dev.square().sum(dim) / (n - 1).clamp_min(1)
    std = torch.where(n > 1, var.sqrt(), torch.zeros_like(var))
    return mean, std, n


def area_under_curve(x: Sequence[float] | Tensor, y: Tensor | np.ndarray, dim: int = -1) -> Tensor:
    """Trapezoidal area under ``y(x)`` divided by the x range: the curve's mean height.

    ``x`` (K,) increasing; ``y`` (..., K, ...) with the K points along ``dim``. Dividing by
    ``x[-1] - x[0]`` puts the area on the metric's own scale (an accuracy AUC is an accuracy),
    so curves over different ranges stay comparable. Callers prepend a known point (pixel
    perturbation: change 0 at fraction 0) before calling.

    Example
    -------
    >>> area_under_curve([0.0, 0.5, 1.0], torch.tensor([0.0, 1.0, 1.0]))
    tensor(0.7500, dtype=torch.float64)
    """
    xs = torch.as_tensor(x, dtype=torch.float64)
    ys = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).to(torch.float64)
    if xs.ndim != 1 or len(xs) < 2:
        raise ValueError(f"x must hold at least two increasing points, got {xs.tolist()}")
    if not bool((xs[1:] > xs[:-1]).all()):
        raise ValueError(f"x must be strictly increasing, got {xs.tolist()}")
    if ys.shape[dim] != len(xs):
        raise ValueError(f"y has {ys.shape[dim]} points along dim {dim} but x has {len(xs)}")
    return torch.trapezoid(ys, xs, dim=dim) / (xs[-1] - xs[0])
