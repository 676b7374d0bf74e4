"""How alike two attribution maps are: the similarity measures of the sanity checks.

All functions compare a batch of maps with another, image by image, and return one value per
image, (N,) float64. They are vectorised over the batch (HOG excepted: scikit-image computes it
one image at a time, which is why it is optional).

* :func:`spearman`: Spearman rank correlation of the flattened maps, with average ranks for ties
  (SciPy's ``rankdata``), as ``scipy.stats.spearmanr``. NaN when a map is constant (its ranks
  carry no order), as SciPy; :func:`map_similarities` can give that case a value instead
  (``constant_value``: the sanity checks count a map that has become constant as 0).
* :func:`ssim`: the structural similarity index with a uniform ``win_size`` x ``win_size``
  window, ``K1 = 0.01``, ``K2 = 0.03``, sample covariances, averaged over the valid window
  positions: scikit-image's ``structural_similarity`` defaults, written for batches.
* :func:`hog_correlation`: Pearson correlation of the HOG descriptors of two maps.

:func:`map_similarities` applies the sanity checks' measures to attributions (N, C, H, W):

================ ===============================================================================
``spearman_abs`` Spearman on ``max_c |A_c|`` (the ranking map)
``spearman``     Spearman on the signed map (per pixel, the channel of largest |value|)
``ssim``         SSIM (window 5) on ``max_c |A_c|`` divided by its max (range [0, 1])
``hog``          HOG correlation on the same normalised magnitude map (optional, slow)
================ ===============================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor

from prunegrad_lite.maps import normalize_map, reduce_channels

__all__ = [
    "SIMILARITIES",
    "constant_maps",
    "hog_correlation",
    "map_similarities",
    "pearson",
    "spearman",
    "ssim",
]

SIMILARITIES = ("spearman_abs", "spearman", "ssim", "hog")


def _flat64(x: Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    return a.reshape(a.shape[0], -1).astype(np.float64)


def pearson(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (N, ...) -> (N,).

    NaN where a row is constant.
    """
    x, y = _flat64(a), _flat64(b)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} and {y.shape}")
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (x * y).sum(1) / np.where(den > 0, den, 1.0), np.nan)
    return torch.from_numpy(np.clip(r, -1.0, 1.0))


def spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> Tensor:
    """Spearman rank correlation per image (N, ...) -> (N,), average ranks for ties.

    Equals ``scipy.stats.spearmanr(a[n].ravel(), b[n].ravel()).statistic`` for every n.

    Example
    -------
    >>> spearman(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]))
    tensor([-1.], dtype=torch.float64)
    """
    x, y = _flat64(a), _flat64(b)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} and {y.shape}")
    return pearson(rankdata(x, axis=1), rankdata(y, axis=1))


def ssim(
    a: Tensor | np.ndarray, b: Tensor | np.ndarray, win_size: int = 5, data_range: float = 1.0
) -> Tensor:
    """Mean structural similarity per image of (N, H, W) maps -> (N,), float64.

    Uniform ``win_size`` window (default 5, odd, at most the image side), ``data_range`` the
    value range of the maps (default 1: maps in [0, 1]); as scikit-image's
    ``structural_similarity(a[n], b[n], win_size=win_size, data_range=data_range)``.
    """
    x = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).detach()
    y = torch.as_tensor(np.asarray(b) if not isinstance(b, Tensor) else b).detach()
    x, y = x.to("cpu", torch.float64), y.to("cpu", torch.float64)
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"maps must both be (N, H, W), got {tuple(x.shape)} and {tuple(y.shape)}")
    if win_size % 2 != 1 or win_size > min(x.shape[1:]):
        raise ValueError(f"win_size must be odd and at most the image side, got {win_size}")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    x, y = x[:, None], y[:, None]  # (N, 1, H, W)
    count = win_size * win_size
    cov_norm = count / (count - 1)  # sample covariance, scikit-image's default

    def mean(t: Tensor) -> Tensor:  # window means at the valid positions (N, 1, H-w+1, W-w+1)
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _hog_cell(shape: Sequence[int]) -> int:
    return max(2, min(shape) // 8)  # about 8 cells per side: 4 px on 28x28, 28 px on 224x224


def hog_correlation(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> Tensor:
    """Pearson correlation of the HOG descriptors of (N, H, W) maps -> (N,).

    HOG with 9 orientations, cells of ``max(2, min(H, W) // 8)`` pixels and 2 x 2 blocks
    (scikit-image's ``feature.hog``); one image at a time, so it is an option of the sanity
    checks, off by default.
    """
    from skimage.feature import hog

    x, y = _flat64(a), _flat64(b)
    shape = tuple(np.asarray(a).shape[1:]) if not isinstance(a, Tensor) else tuple(a.shape[1:])
    cell = _hog_cell(shape)

    def descriptor(m: np.ndarray) -> np.ndarray:
        return hog(
            m.reshape(shape),
            orientations=9,
            pixels_per_cell=(cell, cell),
            cells_per_block=(2, 2),
            feature_vector=True,
        )

    # scikit-image has no batched HOG: one call per image (optional measure)
    hx = np.stack([descriptor(m) for m in x])
    hy = np.stack([descriptor(m) for m in y])
    return pearson(hx, hy)


def map_similarities(
    original: Tensor,
    other: Tensor,
    measures: Sequence[str] = ("spearman_abs", "spearman", "ssim"),
    constant_value: float | None = None,
) -> dict[str, Tensor]:
    """The sanity checks' similarity of each map in ``other`` to the one in ``original``.

    Both are attributions (N, C, H, W). Returns ``{measure: (N,) float64}``; see the module
    docstring for the measures (default: both Spearman correlations and SSIM).

    ``constant_value``: the correlation measures (Spearman, HOG) are undefined (NaN) when a map
    is constant. With a number, an image whose ``other`` map is constant while its ``original``
    map is not gets that value: a map that has become constant (every path to the input cut,
    a dead network) keeps none of the original's ranking, so the sanity checks use 0. None
    (default) keeps SciPy's NaN. SSIM is defined for constant maps and is never replaced.

    Example
    -------
    >>> sims = map_similarities(maps, maps_after_randomisation)
    >>> sims["spearman_abs"].mean()
    """
    unknown = [m for m in measures if m not in SIMILARITIES]
    if unknown:
        raise ValueError(f"unknown similarity measure(s) {unknown}; known: {SIMILARITIES}")
    if original.shape != other.shape or original.ndim != 4:
        raise ValueError(
            f"maps must both be (N, C, H, W), got {tuple(original.shape)} and {tuple(other.shape)}"
        )
    mag_a, mag_b = reduce_channels(original, "max_abs"), reduce_channels(other, "max_abs")
    out: dict[str, Tensor] = {}
    for measure in measures:
        if measure == "spearman_abs":
            a, b = mag_a, mag_b
            out[measure] = spearman(a, b)
        elif measure == "spearman":
            a = reduce_channels(original, "signed_max_abs")
            b = reduce_channels(other, "signed_max_abs")
            out[measure] = spearman(a, b)
        elif measure == "ssim":
            out[measure] = ssim(normalize_map(mag_a), normalize_map(mag_b), 5, 1.0)
            continue  # defined for constant maps
        else:
            a, b = mag_a, mag_b
            out[measure] = hog_correlation(normalize_map(mag_a), normalize_map(mag_b))
        if constant_value is not None:
            became_constant = ~constant_maps(a) & constant_maps(b)
            out[measure] = torch.where(
                became_constant, torch.full_like(out[measure], constant_value), out[measure]
            )
    return out


def constant_maps(maps: Tensor) -> Tensor:
    """Which maps (N, ...) are constant (one value everywhere): (N,) bool.

    Example
    -------
    >>> constant_maps(torch.zeros(2, 1, 4, 4))
    tensor([True, True])
    """
    flat = _flat64(maps)
    return torch.from_numpy(flat.max(1) == flat.min(1))
