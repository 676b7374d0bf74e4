"""Lessons 6 and 7, removing pixels: what the perturbed and the ROAR-modified images look like.

Both benchmarks rank pixels by ``max_c |A_c|`` and replace some of them. These functions make
the images the benchmarks feed the model for a few examples, with the benchmarks' own pieces
(:func:`~prunegrad_lite.benchmarks.rank_pixels`, ``removal_masks``, ``remove_pixels``,
``replacement_images``, ``mask_top_pixels``), so that a learner sees what is measured:

* :func:`perturbed_images` (pixel perturbation): the least (LeRF) or most (MoRF) important
  fraction of the pixels replaced, and the fractional change of the predicted class's
  probability, ``|p - p'| / p``;
* :func:`roar_images` (ROAR): the most important fraction replaced by the per-channel mean of
  the training images, as every training and test image is before retraining.

Example
-------
>>> maps = compute_maps(model, x[:4], ["gradient", "prunegrad"]).maps
>>> lerf = perturbed_images(model, x[:4], maps, fraction=0.1, order="lerf")
>>> lerf.change["prunegrad"]                    # (4,) |p - p'| / p
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.pixel_perturbation import probability_change
from prunegrad_lite.benchmarks.removal import (
    rank_pixels,
    removal_masks,
    remove_pixels,
    replacement_images,
)
from prunegrad_lite.benchmarks.roar import mask_top_pixels
from prunegrad_lite.device import model_device

__all__ = ["PerturbedImages", "perturbed_images", "roar_images"]


@dataclass
class PerturbedImages:
    """Images with pixels removed per method, and what the model says about them."""

    fraction: float  # fraction of the pixels replaced
    order: str  # "lerf", "morf" or "roar" (top pixels, training-mean fill)
    images: dict[str, Tensor]  # method -> (N, C, H, W) modified images, on the CPU
    change: dict[str, np.ndarray]  # method -> (N,) |p - p'| / p of the predicted class


@torch.no_grad()
def _probabilities(model: nn.Module, images: Tensor, target: Tensor) -> Tensor:
    logits = model(images.to(model_device(model)))  # (N, K)
    return logits.softmax(-1).gather(1, target.view(-1, 1).to(logits.device))[:, 0].cpu()


def _ranks(maps: Mapping[str, Tensor], seed: int) -> dict[str, Tensor]:
    # the benchmarks break ties with a Generator seeded by their seed, per method
    return {m: rank_pixels(a.cpu(), torch.Generator().manual_seed(seed)) for m, a in maps.items()}


def _changes(
    model: nn.Module, images: Tensor, modified: Mapping[str, Tensor]
) -> dict[str, np.ndarray]:
    with torch.no_grad():
        target = model(images.to(model_device(model))).argmax(1).cpu()  # (N,) predicted
    p = _probabilities(model, images, target)
    return {
        m: probability_change(p, _probabilities(model, x, target)).double().numpy()
        for m, x in modified.items()
    }


def perturbed_images(
    model: nn.Module,
    images: Tensor,
    maps: Mapping[str, Tensor],
    fraction: float,
    order: str = "lerf",
    replacement: str | float = "mean",
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
) -> PerturbedImages:
    """The pixel-perturbation benchmark's modified images for one fraction, and their change.

    ``images`` (N, C, H, W) normalised; ``maps`` method -> (N, C, H, W) maps of those images;
    ``order`` "lerf" removes the least important pixels, "morf" the most important;
    ``replacement`` as :class:`~prunegrad_lite.PixelPerturbationConfig` (default "mean": 0 in
    normalised space; "black" needs ``mean`` and ``std``). Ties are broken as the benchmark
    breaks them (``seed``).

    Example
    -------
    >>> out = perturbed_images(model, x, maps, 0.05, "morf")
    >>> out.images["gradient"].shape == x.shape
    True
    """
    x = images.detach().float().cpu()
    fill = replacement_images(x, replacement, mean, std)
    h, w = x.shape[-2:]
    modified = {
        m: remove_pixels(x, removal_masks(rank, [fraction], order, (h, w))[0], fill)
        for m, rank in _ranks(maps, seed).items()
    }
    return PerturbedImages(float(fraction), order, modified, _changes(model, x, modified))


def roar_images(
    model: nn.Module,
    images: Tensor,
    maps: Mapping[str, Tensor],
    fraction: float,
    fill: Tensor,
    *,
    seed: int = 0,
) -> PerturbedImages:
    """ROAR's modified images: the top ``fraction`` of pixels replaced by ``fill`` (C,).

    ``fill`` is the per-channel mean of the training images (``train.images.mean((0, 2, 3))``),
    what :func:`~prunegrad_lite.roar` uses. ``change`` is what the *original* model makes of
    them, for reference only: ROAR's measure is the accuracy of a model retrained on them.

    Example
    -------
    >>> out = roar_images(model, train.images[:4], maps, 0.5, train.images.mean((0, 2, 3)))
    """
    x = images.detach().float().cpu()
    modified = {
        m: mask_top_pixels(x, rank, fraction, fill.detach().float().cpu())
        for m, rank in _ranks(maps, seed).items()
    }
    return PerturbedImages(float(fraction), "roar", modified, _changes(model, x, modified))
