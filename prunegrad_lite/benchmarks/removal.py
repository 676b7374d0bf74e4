"""Which pixels to remove and what to put in their place: shared by pixel perturbation and ROAR.

1. :func:`rank_pixels` orders the pixels of each image by importance, ``max_c |A_c|`` (spec
   section 1, "Maps"), with ties broken uniformly at random (seeded): gradient maps have many
   exact zeros (dead ReLUs), and a stable sort would break those ties by position, removing the
   top-left corner first.
2. :func:`removal_masks` turns the ranks into boolean masks for many fractions at once:
   ``"morf"`` (most relevant first) removes the ``k`` best-ranked pixels, ``"lerf"`` (least
   relevant first) the ``k`` worst, with ``k = round(fraction * H * W)`` (at least 1).
3. :func:`replacement_images` gives the values removed pixels take, and :func:`remove_pixels`
   applies a mask: **all channels of a pixel are replaced together**.

Replacement values (the field disagrees; ours is the spec's):

* ``"mean"`` (default): 0 in normalised space, i.e. the normalisation mean colour. For the
  Fashion-MNIST and CIFAR-10 models that is the dataset mean; for EfficientNet-Lite0, whose
  ``(x - 127) / 128`` normalisation has no dataset mean, it is mid-grey.
* ``"black"``: pixel value 0, i.e. ``-mean / std`` per channel (needs ``mean`` and ``std``).
* ``"blur"``: the same image blurred with a Gaussian (``blur_sigma`` pixels, default 3).
* ``"noisy_linear"``: the noisy linear imputation of Rong et al. 2022 (ROAD, ICML): each removed
  pixel is the weighted mean of its 8 neighbours, all removed pixels of an image solved jointly,
  plus small noise (:mod:`~prunegrad_lite.benchmarks.imputation`). It depends on the mask, so it
  goes through :func:`replace_pixels`, not :func:`replacement_images`.
* a number: that value in normalised space, every channel.

Why the choice matters: with ``"mean"`` a removed pixel becomes 0 in normalised space, exactly
the value where Gradient x Input and Integrated Gradients (zero baseline) give 0 attribution, so
their "least relevant" pixels are often pixels that already hold the replacement value and
removing them changes nothing. :func:`mean_abs_change` measures how much a removal changed the
input, so a benchmark can report it beside the output change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from prunegrad_lite.maps import reduce_channels

__all__ = [
    "ORDERS",
    "REPLACEMENTS",
    "check_fractions",
    "fraction_label",
    "mean_abs_change",
    "num_removed",
    "rank_pixels",
    "removal_masks",
    "remove_pixels",
    "replace_pixels",
    "replacement_images",
]

ORDERS = ("lerf", "morf")
REPLACEMENTS = ("mean", "black", "blur", "noisy_linear")
#: replacements whose value depends on the removal mask (not a fixed image per input)
MASK_DEPENDENT = ("noisy_linear",)


def check_fractions(fractions: float | Sequence[float]) -> tuple[float, ...]:
    """Fractions as a sorted tuple without repeats; each must lie in (0, 1).

    Example
    -------
    >>> check_fractions([0.3, 0.1])
    (0.1, 0.3)
    """
    values = [fractions] if isinstance(fractions, (int, float)) else list(fractions)
    if not values:
        raise ValueError("give at least one fraction of pixels to remove")
    bad = [f for f in values if not (isinstance(f, (int, float)) and 0.0 < float(f) < 1.0)]
    if bad:
        raise ValueError(f"fractions must lie strictly between 0 and 1, got {bad}")
    return tuple(sorted({float(f) for f in values}))


def fraction_label(fraction: float) -> str:
    """A fraction as the benchmarks label it: ``0.1`` -> ``"10%"``."""
    return f"{100 * fraction:g}%"


def num_removed(fraction: float, num_pixels: int) -> int:
    """Pixels removed for ``fraction`` of ``num_pixels``: ``round(fraction * P)``, at least 1."""
    return max(1, min(num_pixels, int(math.floor(fraction * num_pixels + 0.5))))


def rank_pixels(maps: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The importance rank of every pixel, (N, H*W) long: 0 for the most important.

    Parameters
    ----------
    maps : attributions (N, C, H, W), reduced with ``max_c |A_c|``, or pixel maps (N, H, W)
        whose values are used as they are (higher is more important).
    generator : breaks ties uniformly at random; default None, a fixed ``Generator`` seeded 0.

    All images are ranked at once (one ``argsort`` over the (N, H*W) matrix).

    Example
    -------
    >>> rank_pixels(torch.tensor([[[0.1, 0.9], [0.5, 0.0]]]))
    tensor([[2, 0, 1, 3]])
    """
    if maps.ndim == 4:
        maps = reduce_channels(maps, "max_abs")
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, C, H, W) or (N, H, W), got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values: they cannot rank pixels")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    flat = maps.detach().flatten(1).cpu()  # (N, P)
    n, p = flat.shape
    shuffle = torch.rand(n, p, generator=gen).argsort(dim=1)  # (N, P) random order for ties
    shuffled = flat.gather(1, shuffle)  # (N, P)
    order = shuffle.gather(1, shuffled.argsort(dim=1, descending=True, stable=True))  # best first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(p).expand(n, p))  # rank[n, order[n, j]] = j
    return rank


def removal_masks(
    rank: Tensor, fractions: Sequence[float], order: str, shape: tuple[int, int]
) -> Tensor:
    """Boolean masks of the removed pixels, (F, N, H, W), for every fraction at once.

    ``rank`` (N, H*W) from :func:`rank_pixels`; ``order`` ``"morf"`` removes the best-ranked
    ``k`` pixels, ``"lerf"`` the worst-ranked ``k``; ``shape`` is (H, W).

    Example
    -------
    >>> removal_masks(torch.tensor([[2, 0, 1, 3]]), [0.25, 0.5], "morf", (2, 2)).flatten(1)
    tensor([[False,  True, False, False],
            [False,  True,  True, False]])
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if any(not 0.0 < float(f) < 1.0 for f in fractions):
        raise ValueError(f"fractions must lie strictly between 0 and 1, got {list(fractions)}")
    n, p = rank.shape
    if p != shape[0] * shape[1]:
        raise ValueError(
            f"rank has {p} pixels per image but shape {shape} has {shape[0] * shape[1]}"
        )
    k = torch.tensor([num_removed(f, p) for f in fractions], device=rank.device)  # (F,)
    if order == "morf":
        masks = rank[None] < k[:, None, None]  # (F, N, P)
    else:
        masks = rank[None] >= (p - k)[:, None, None]
    return masks.view(len(fractions), n, *shape)


def _gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, C, H, W), reflect padding, radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, images.shape[-1] - 1, images.shape[-2] - 1)
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    n, c, h, w = images.shape
    x = images.reshape(n * c, 1, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    return x.view(n, c, h, w)


def replacement_images(
    images: Tensor,
    how: str | float = "mean",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    blur_sigma: float = 3.0,
) -> Tensor:
    """The values removed pixels take, shaped like ``images`` (N, C, H, W) (normalised space).

    Parameters
    ----------
    images : normalised inputs ``(pixel - mean) / std``.
    how : ``"mean"`` (default; 0, the normalisation mean colour), ``"black"`` (pixel 0, needs
        ``mean`` and ``std`` in [0, 1] pixel units), ``"blur"`` (Gaussian blur of the image,
        std ``blur_sigma`` pixels, default 3) or a number (that normalised value).

    Example
    -------
    >>> replacement_images(x, "black", mean=(0.2860406,), std=(0.3530242,))[0, 0, 0, 0]
    tensor(-0.8103)
    """
    if isinstance(how, (int, float)) and not isinstance(how, bool):
        return torch.full_like(images, float(how))
    if how == "mean":
        return torch.zeros_like(images)
    if how == "black":
        if mean is None or std is None:
            raise ValueError("replacement 'black' needs the normalisation mean and std")
        m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (-m / s).expand_as(images).clone()
    if how == "blur":
        if not blur_sigma > 0:
            raise ValueError(f"blur_sigma must be positive, got {blur_sigma}")
        return _gaussian_blur(images, blur_sigma)
    if how in MASK_DEPENDENT:
        raise ValueError(
            f"replacement {how!r} depends on which pixels are removed: use "
            "replace_pixels(images, masks, how) instead of replacement_images"
        )
    raise ValueError(f"replacement must be one of {REPLACEMENTS} or a number, got {how!r}")


def remove_pixels(images: Tensor, masks: Tensor, replacement: Tensor) -> Tensor:
    """Images with the masked pixels replaced, all channels of a pixel together.

    ``images`` and ``replacement`` (N, C, H, W); ``masks`` (N, H, W) or (F, N, H, W) bool. With
    F masks the result is (F, N, C, H, W): every fraction's copy in one tensor.
    """
    if masks.shape[-3:] != (images.shape[0], *images.shape[-2:]):
        raise ValueError(
            f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}: "
            "expected (N, H, W) or (F, N, H, W)"
        )
    return torch.where(masks.unsqueeze(-3), replacement, images)


def replace_pixels(
    images: Tensor,
    masks: Tensor,
    how: str | float = "mean",
    *,
    replacement: Tensor | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    blur_sigma: float = 3.0,
    noise_std: float = 0.01,
    generator: torch.Generator | None = None,
) -> Tensor:
    """:func:`remove_pixels` for every replacement, the mask-dependent ``"noisy_linear"`` too.

    ``images`` (N, C, H, W); ``masks`` (N, H, W) or (F, N, H, W) bool; returns (N, C, H, W) or
    (F, N, C, H, W). ``replacement``: a precomputed :func:`replacement_images` result to reuse
    (not for ``"noisy_linear"``). ``noise_std`` and ``generator``: the imputation's noise.

    Example
    -------
    >>> copies = replace_pixels(x, masks, "noisy_linear", generator=torch.Generator().manual_seed(0))
    """
    if how in MASK_DEPENDENT:
        from prunegrad_lite.benchmarks.imputation import noisy_linear_impute

        if masks.shape[-3:] != (images.shape[0], *images.shape[-2:]):
            raise ValueError(
                f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}: "
                "expected (N, H, W) or (F, N, H, W)"
            )
        if masks.ndim == 3:
            return noisy_linear_impute(images, masks, noise_std=noise_std, generator=generator)
        f = masks.shape[0]
        filled = noisy_linear_impute(
            images.unsqueeze(0).expand(f, *images.shape).flatten(0, 1),
            masks.flatten(0, 1),
            noise_std=noise_std,
            generator=generator,
        )  # every fraction's copies as one batch: one sparse solve
        return filled.view(f, *images.shape)
    if replacement is None:
        replacement = replacement_images(images, how, mean, std, blur_sigma)
    return remove_pixels(images, masks, replacement)


def mean_abs_change(images: Tensor, perturbed: Tensor, masks: Tensor) -> Tensor:
    """Mean ``|x' - x|`` over the removed pixels (all channels) of each copy: how much a removal
    changed the input.

    ``images`` (N, C, H, W); ``perturbed`` (..., N, C, H, W) and ``masks`` (..., N, H, W) as
    :func:`replace_pixels` returns and takes them. Returns (..., N) float64; NaN where no pixel
    is removed.

    Example
    -------
    >>> mean_abs_change(x, remove_pixels(x, m, torch.zeros_like(x)), m)   # mean |x| removed
    """
    diff = (perturbed.double() - images.double()).abs().sum(-3)  # (..., N, H, W)
    removed = masks.to(diff.dtype)
    total = (diff * removed).flatten(-2).sum(-1)
    count = removed.flatten(-2).sum(-1) * images.shape[-3]
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
