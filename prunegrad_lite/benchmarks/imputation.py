"""Noisy linear imputation: fill removed pixels from their neighbours (Rong et al. 2022).

Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022 (ROAD). Replacing removed pixels by a constant (or a blur) leaves
a trace of *where* pixels were removed, which the model can read (the removal mask leaks
information). Their noisy linear imputation makes every removed pixel the weighted average of
its 8 neighbours, edge neighbours with weight 1/6 and diagonal neighbours with 1/12 (ROAD's
weights), where the neighbours may themselves be removed: all removed pixels of an image are
solved **jointly** as one sparse linear system, then small Gaussian noise is added to them.

For each removed pixel i, with N(i) its neighbours inside the image and w_ij the weights::

    (sum_{j in N(i)} w_ij) * x_i  -  sum_{j in N(i), removed} w_ij * x_j  =  sum_{j in N(i), kept} w_ij * x_j

i.e. ``x_i`` is the weighted mean of its in-image neighbours (weights renormalised at the
border). All channels share the matrix (the mask is per pixel) and are solved as several
right-hand sides. The images of a batch form one block-diagonal system, solved by one call to
``scipy.sparse.linalg.spsolve``: no loop over images.

Properties the tests check: kept pixels never change; a constant image stays constant (with
noise 0); a linear ramp is reconstructed exactly at removed pixels whose 8 neighbours all lie
inside the image (the weights are symmetric there; at the border the weighted mean of the
in-image neighbours is not the ramp's value); large removed regions, the border included,
solve because every connected removed region of a partly kept image touches a kept pixel.
An image with **every** pixel removed has no kept value to spread (the system is singular):
its pixels are set to 0 (the normalisation mean colour) plus the noise.

Example
-------
>>> removed = torch.rand(4, 28, 28) < 0.1
>>> filled = noisy_linear_impute(images, removed, noise_std=0.01,
...                              generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from torch import Tensor

__all__ = ["NEIGHBOUR_WEIGHTS", "noisy_linear_impute"]

#: (row offset, column offset) -> weight: ROAD's 1/6 for edge and 1/12 for diagonal neighbours
NEIGHBOUR_WEIGHTS: dict[tuple[int, int], float] = {
    (-1, 0): 1 / 6,
    (1, 0): 1 / 6,
    (0, -1): 1 / 6,
    (0, 1): 1 / 6,
    (-1, -1): 1 / 12,
    (-1, 1): 1 / 12,
    (1, -1): 1 / 12,
    (1, 1): 1 / 12,
}


def _shift(a: np.ndarray, dy: int, dx: int, fill: float | bool) -> np.ndarray:
    """``out[..., y, x] = a[..., y + dy, x + dx]``, ``fill`` where that lies outside."""
    out = np.full_like(a, fill)
    h, w = a.shape[-2:]
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[..., yd, xd] = a[..., ys, xs]
    return out


def noisy_linear_impute(
    images: Tensor,
    removed: Tensor,
    *,
    noise_std: float = 0.01,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Images with the removed pixels imputed from their neighbours, plus noise (Rong et al.).

    Parameters
    ----------
    images : (N, C, H, W) inputs (normalised space); not modified.
    removed : (N, 1, H, W) or (N, H, W) bool, True where a pixel (all its channels) is removed.
    noise_std : std of the Gaussian noise added to each imputed value (ROAD's default 0.01);
        0 for the plain linear imputation.
    generator : draws the noise (on the CPU); None: a ``Generator`` seeded 0.

    Returns a new (N, C, H, W) tensor on ``images``' device and dtype: kept pixels are exactly
    the input's, removed pixels the solution of the joint system (see the module docstring).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    if removed.ndim == 4:
        if removed.shape[1] != 1:
            raise ValueError(
                f"removed must be (N, 1, H, W) or (N, H, W) (one mask for all channels), got "
                f"{tuple(removed.shape)}"
            )
        removed = removed[:, 0]
    if tuple(removed.shape) != (n, h, w):
        raise ValueError(
            f"removed {tuple(removed.shape)} does not match images {tuple(images.shape)}: "
            "expected (N, H, W) or (N, 1, H, W)"
        )
    if removed.dtype != torch.bool:
        raise ValueError(f"removed must be a bool mask, got dtype {removed.dtype}")
    if not noise_std >= 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    x = images.detach().to("cpu", torch.float64).numpy()  # (N, C, H, W)
    mask = removed.detach().cpu().numpy()  # (N, H, W)
    out = x.copy()
    full = mask.reshape(n, -1).all(1)  # every pixel removed: no kept value to spread
    solve = mask & ~full[:, None, None]
    count = int(solve.sum())
    if count:
        index = np.full(mask.shape, -1, dtype=np.int64)  # unknown number of each removed pixel
        index[solve] = np.arange(count)
        diag = np.zeros(mask.shape)  # sum of in-image neighbour weights
        rhs = np.zeros((c, *mask.shape))  # (C, N, H, W): weighted sum of kept neighbours
        rows, cols, vals = [], [], []
        for (dy, dx), weight in NEIGHBOUR_WEIGHTS.items():
            inside = _shift(np.ones_like(mask), dy, dx, False)  # neighbour within the image
            n_removed = _shift(solve, dy, dx, False)
            n_index = _shift(index, dy, dx, -1)
            n_value = _shift(x.transpose(1, 0, 2, 3), dy, dx, 0.0)  # (C, N, H, W)
            diag += weight * inside
            kept = solve & inside & ~n_removed
            rhs += weight * np.where(kept, n_value, 0.0)
            coupled = solve & n_removed
            rows.append(index[coupled])
            cols.append(n_index[coupled])
            vals.append(np.full(int(coupled.sum()), -weight))
        rows.append(np.arange(count))
        cols.append(np.arange(count))
        vals.append(diag[solve])
        matrix = scipy.sparse.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(count, count),
        )
        b = rhs[:, solve].T  # (count, C)
        values = scipy.sparse.linalg.spsolve(matrix, b).reshape(count, c)
        out.transpose(1, 0, 2, 3)[:, solve] = values.T
    if full.any():
        out[full] = 0.0
    if noise_std > 0 and mask.any():
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64).numpy()
        out += noise_std * noise * mask[:, None]
    return torch.from_numpy(out).to(device=images.device, dtype=images.dtype)
