"""Notebook 06, pixel perturbation: what the perturbed images look like, and what they change.

Used by ``notebooks/06_pixel_perturbation.ipynb``; its pieces (ranking maps, the model's change,
:func:`plot_removed_pixels`) also serve ROAR's images in
:mod:`~prunegrad_lite.course.n07_roar`.

The benchmark ranks pixels by ``max_c |A_c|`` and replaces some of them.
:func:`perturbed_images` makes the images the benchmark feeds the model for a few examples,
with the benchmark's own pieces (:func:`~prunegrad_lite.benchmarks.rank_pixels`,
``removal_masks``, ``remove_pixels``, ``replacement_images``), so that a learner sees what is
measured: the least (LeRF) or most (MoRF) important fraction of the pixels replaced, and the
fractional change of the predicted class's probability, ``|p - p'| / p``.

Example
-------
>>> maps = method_maps(model, x[:4], ["gradient", "prunegrad"]).maps
>>> lerf = perturbed_images(model, x[:4], maps, fraction=0.1, order="lerf")
>>> lerf.change["prunegrad"]                    # (4,) |p - p'| / p
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.benchmarks.pixel_perturbation import probability_change
from prunegrad_lite.benchmarks.removal import (
    rank_pixels,
    removal_masks,
    remove_pixels,
    replacement_images,
)
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.shared import SLIDER, LessonWidget, show_image
from prunegrad_lite.runtime import model_device
from prunegrad_lite.maps import to_display_image

__all__ = [
    "PerturbedImages",
    "build_pixel_perturbation_widget",
    "perturbed_images",
    "plot_removed_pixels",
]


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


def pixel_ranks(maps: Mapping[str, Tensor], seed: int) -> dict[str, Tensor]:
    """Method -> its pixel ranking, ties broken as the benchmarks break them (seeded per method)."""
    return {m: rank_pixels(a.cpu(), torch.Generator().manual_seed(seed)) for m, a in maps.items()}


def probability_changes(
    model: nn.Module, images: Tensor, modified: Mapping[str, Tensor]
) -> dict[str, np.ndarray]:
    """Method -> ``|p - p'| / p`` (N,) of the class the model predicts for the unmodified images."""
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
        for m, rank in pixel_ranks(maps, seed).items()
    }
    return PerturbedImages(
        float(fraction), order, modified, probability_changes(model, x, modified)
    )


# -------------------------------------------------- figures: the images each ranking leaves


def plot_removed_pixels(
    images: Tensor | np.ndarray,
    modified: Mapping[str, Tensor | np.ndarray],
    change: Mapping[str, np.ndarray] | None = None,
    title: str = "Images with pixels removed, per method",
) -> Figure:
    """One row per image: the input, then the image each method's ranking leaves.

    ``images`` (N, ...) and each ``modified[method]`` (N, ...) are display images in [0, 1]
    (tensors (N, C, H, W) or numpy (N, H, W[, C])). ``change[method]`` (N,), when given, is
    written under each panel as ``|p - p'| / p``, the measure of pixel perturbation.
    """
    names = list(modified)
    n = len(images)
    ncols = len(names) + 1
    fig, axes = plt.subplots(
        n, ncols, figsize=(1.9 * ncols, 2.0 * n + 0.6), squeeze=False, layout="constrained"
    )
    for row in range(n):
        show_image(axes[row, 0], images[row], "input" if row == 0 else None)
        for col, name in enumerate(names, start=1):
            show_image(axes[row, col], modified[name][row], name if row == 0 else None)
            if change is not None:
                axes[row, col].set_xlabel(f"|p - p'| / p = {change[name][row]:.3f}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


# -------------------------------------------------- the widget: fraction and order of removal


def build_pixel_perturbation_widget(
    model: nn.Module,
    images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    methods: Sequence[str],
    method_options: Mapping[str, dict] | None = None,
    replacement: str | float = "mean",
) -> LessonWidget:
    """Notebook 06: a fraction slider and LeRF/MoRF, showing the perturbed images and the change.

    Maps are computed once when the widget is built. The result is a
    :class:`~prunegrad_lite.course.PerturbedImages` (the modified images and ``|p - p'| / p`` per
    method); ``replacement`` as in :class:`~prunegrad_lite.PixelPerturbationConfig`.
    """
    options = {m: o for m, o in (method_options or {}).items() if m in methods}
    maps = method_maps(model, images, methods, options).maps
    shown = to_display_image(images, mean, std)
    fraction = widgets.FloatSlider(value=0.1, min=0.01, max=0.5, step=0.01,
                                   description="fraction removed", readout_format=".0%",
                                   **SLIDER)  # fmt: skip
    order = widgets.ToggleButtons(
        options=[("LeRF (least relevant first)", "lerf"), ("MoRF (most relevant first)", "morf")],
        value="lerf",
        style={"button_width": "auto"},  # the default width cuts the labels off
    )

    def compute(fraction: float, order: str):
        return perturbed_images(model, images, maps, fraction, order, replacement,
                                mean=mean, std=std)  # fmt: skip

    def draw(result, fraction: float, order: str) -> Figure:
        modified = {m: to_display_image(x, mean, std) for m, x in result.images.items()}
        title = (f"{order.upper()}: the {fraction:.0%} {'least' if order == 'lerf' else 'most'}"
                 f" important pixels replaced ({replacement}); lower change is better for LeRF,"
                 " higher for MoRF")  # fmt: skip
        return plot_removed_pixels(shown, modified, result.change, title)

    return LessonWidget("Pixel perturbation: move the fraction, switch the order",
                        {"fraction": fraction, "order": order}, compute, draw)  # fmt: skip
