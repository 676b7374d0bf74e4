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

The widget (:func:`build_pixel_perturbation_widget`) switches the order and the replacement
value ("mean", "blur", "noisy_linear": the three the benchmark reports) and writes under each
image the output change and the input change ``|Δx|`` of the removed pixels.

The exercises' answers (each computes its evidence and ``assert``s the claim of the answer):
:func:`mean_fill_answer` (why the mean fill favours Grad x Input), :func:`paired_lead_answer`
(is one method's lead over another real: the paired interval) and :func:`replacement_answer`
(which replacement hides the removal best).

Example
-------
>>> maps = method_maps(model, x[:4], ["gradient", "prunegrad"]).maps
>>> lerf = perturbed_images(model, x[:4], maps, fraction=0.1, order="lerf")
>>> lerf.change["prunegrad"]                    # (4,) |p - p'| / p
>>> lerf.delta_x["prunegrad"]                   # (4,) mean |x' - x| over the removed pixels
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

from prunegrad_lite.benchmarks.paper import (
    PAPER_ROAR_BASE_ACCURACY,
    PAPER_SANITY,
    PAPER_SOURCE,
    paper_table,
)
from prunegrad_lite.benchmarks.pixel_perturbation import probability_change
from prunegrad_lite.benchmarks.removal import (
    MASK_DEPENDENT,
    mean_abs_change,
    rank_pixels,
    removal_masks,
    replace_pixels,
    replacement_images,
)
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.shared import SLIDER, LessonWidget, show_image
from prunegrad_lite.runtime import model_device
from prunegrad_lite.maps import to_display_image

__all__ = [
    "REPLACEMENT_LABELS",
    "PerturbedImages",
    "build_pixel_perturbation_widget",
    "paper_numbers",
    "perturbed_images",
    "plot_removed_pixels",
]

#: the replacements the widget offers, with their labels: the three the benchmark reports
REPLACEMENT_LABELS = {"mean": "mean", "blur": "blur", "noisy_linear": "noisy linear"}


@dataclass
class PerturbedImages:
    """Images with pixels removed per method, and what the model says about them."""

    fraction: float  # fraction of the pixels replaced
    order: str  # "lerf", "morf" or "roar" (top pixels, training-mean fill)
    images: dict[str, Tensor]  # method -> (N, C, H, W) modified images, on the CPU
    change: dict[str, np.ndarray]  # method -> (N,) |p - p'| / p of the predicted class
    delta_x: dict[str, np.ndarray] | None = None  # method -> (N,) mean |x' - x| removed pixels
    masks: dict[str, Tensor] | None = None  # method -> (N, H, W) bool, True where replaced
    replacement: str | float = "mean"  # what replaced the pixels


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
    normalised space; "black" needs ``mean`` and ``std``; "blur"; "noisy_linear", the imputation
    of Rong et al. 2022, its noise seeded by ``seed``). Ties are broken as the benchmark breaks
    them (``seed``). ``delta_x`` is the input change of the removed pixels, ``masks`` which
    pixels were replaced.

    Example
    -------
    >>> out = perturbed_images(model, x, maps, 0.05, "morf")
    >>> out.images["gradient"].shape == x.shape
    True
    """
    x = images.detach().float().cpu()
    h, w = x.shape[-2:]
    masks = {
        m: removal_masks(rank, [fraction], order, (h, w))[0]
        for m, rank in pixel_ranks(maps, seed).items()
    }  # method -> (N, H, W)
    fill = None if replacement in MASK_DEPENDENT else replacement_images(x, replacement, mean, std)
    gen = torch.Generator().manual_seed(seed)  # the imputation's noise
    modified = {
        m: replace_pixels(x, mask, replacement, replacement=fill, mean=mean, std=std,
                          generator=gen)
        for m, mask in masks.items()
    }  # fmt: skip
    delta = {m: mean_abs_change(x, modified[m], masks[m]).numpy() for m in masks}
    return PerturbedImages(
        float(fraction), order, modified, probability_changes(model, x, modified), delta,
        masks, replacement,
    )  # fmt: skip


# -------------------------------------------------- the literature's numbers, with their source


def paper_numbers(benchmark: str) -> str:
    """The authors' numbers for one benchmark ("pixel", "roar" or "sanity") as Markdown,
    labelled with their true source: the CVPR 2021 follow-up, not arXiv 1911.11081.

    Read from :mod:`prunegrad_lite.benchmarks.paper`, the numbers the claims are checked with
    (notebooks 06, 07 and 08 show them).

    Example
    -------
    >>> pgl.course.markdown(paper_numbers("roar"))
    """
    if benchmark == "pixel":
        lines = [
            "LeRF fractional output change at 1% / 10% removed (lower is better):",
            "",
            *paper_table("pixel"),
        ]
    elif benchmark == "roar":
        lines = [
            f"ROAR on CIFAR-10 (ResNet-8, base accuracy {PAPER_ROAR_BASE_ACCURACY:g}%), test "
            "accuracy % with 10/30/50/70/90% of the pixels removed (lower is better):",
            "",
            *paper_table("roar"),
        ]
    elif benchmark == "sanity":
        lines = [f"Sanity checks (ResNet50 on ImageNet): {PAPER_SANITY}"]
    else:
        raise ValueError(f"benchmark must be 'pixel', 'roar' or 'sanity', got {benchmark!r}")
    return "\n".join([*lines, "", f"Source: {PAPER_SOURCE}.", ""])


# -------------------------------------------------- figures: the images each ranking leaves


def plot_removed_pixels(
    images: Tensor | np.ndarray,
    modified: Mapping[str, Tensor | np.ndarray],
    change: Mapping[str, np.ndarray] | None = None,
    title: str = "Images with pixels removed, per method",
    delta_x: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """One row per image: the input, then the image each method's ranking leaves.

    ``images`` (N, ...) and each ``modified[method]`` (N, ...) are display images in [0, 1]
    (tensors (N, C, H, W) or numpy (N, H, W[, C])). ``change[method]`` (N,), when given, is
    written under each panel as ``|p - p'| / p``, the measure of pixel perturbation;
    ``delta_x[method]`` (N,), when given, as ``|Δx|``, the input change of the removed pixels.
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
            lines = [] if change is None else [f"|p - p'| / p = {change[name][row]:.3f}"]
            if delta_x is not None:
                lines.append(f"|Δx| = {delta_x[name][row]:.2f}")
            if lines:
                axes[row, col].set_xlabel("\n".join(lines), fontsize=7)
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
    """Notebook 06: the fraction, LeRF/MoRF and the replacement; the perturbed images and changes.

    Maps are computed once when the widget is built. The result is a
    :class:`~prunegrad_lite.course.PerturbedImages` (the modified images, ``|p - p'| / p`` and
    ``|Δx|`` per method); ``replacement`` (as in :class:`~prunegrad_lite.PixelPerturbationConfig`)
    is the replacement control's first value; the control offers it and
    :data:`REPLACEMENT_LABELS`.
    """
    options = {m: o for m, o in (method_options or {}).items() if m in methods}
    maps = method_maps(model, images, methods, options).maps
    shown = to_display_image(images, mean, std)
    fraction = widgets.FloatSlider(value=0.1, min=0.01, max=0.5, step=0.01,
                                   description="fraction removed", readout_format=".0%",
                                   **SLIDER)  # fmt: skip
    # short labels: long ones are cut off in the browser; the tooltips spell them out
    order = widgets.ToggleButtons(
        options=[("LeRF", "lerf"), ("MoRF", "morf")], value="lerf", description="order",
        tooltips=["least relevant first", "most relevant first"],
        style={"button_width": "64px", "description_width": "initial"},
    )  # fmt: skip
    offered = {replacement: str(replacement), **REPLACEMENT_LABELS} if replacement not in (
        REPLACEMENT_LABELS) else REPLACEMENT_LABELS  # fmt: skip
    fill = widgets.ToggleButtons(
        options=[(label, value) for value, label in offered.items()], value=replacement,
        description="replacement",
        tooltips=[_REPLACEMENT_TIPS.get(str(v), "a value in normalised space") for v in offered],
        style={"button_width": "104px", "description_width": "initial"},
    )  # fmt: skip

    def compute(fraction: float, order: str, replacement: str | float):
        return perturbed_images(model, images, maps, fraction, order, replacement,
                                mean=mean, std=std)  # fmt: skip

    def draw(result, fraction: float, order: str, replacement: str | float) -> Figure:
        modified = {m: to_display_image(x, mean, std) for m, x in result.images.items()}
        which = "least" if order == "lerf" else "most"
        title = (f"{order.upper()}: the {fraction:.0%} {which} important pixels replaced by "
                 f"'{offered[replacement]}'\nlower output change is better for LeRF, higher for "
                 "MoRF; |Δx| says how much the input itself changed")  # fmt: skip
        return plot_removed_pixels(shown, modified, result.change, title, result.delta_x)

    return LessonWidget("Pixel perturbation: move the fraction, switch the order and the "
                        "replacement", {"fraction": fraction, "order": order,
                                        "replacement": fill}, compute, draw)  # fmt: skip


_REPLACEMENT_TIPS = {
    "mean": "the dataset mean colour (0 in normalised space)",
    "blur": "the same pixels of a blurred copy (Gaussian, sigma 3)",
    "noisy_linear": "noisy linear imputation from the neighbours (Rong et al. 2022)",
    "black": "pixel value 0",
}
