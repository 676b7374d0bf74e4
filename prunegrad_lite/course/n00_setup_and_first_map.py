"""Notebook 00, setup and a first map: a grid of labelled images, and the first-map widget.

Used by ``notebooks/00_setup_and_first_map.ipynb``. The maps themselves come from
:func:`~prunegrad_lite.course.n04_comparing_methods.method_maps` (notebook 04 compares every
method; notebook 00 previews two of them).

Example
-------
>>> fig = plot_examples(data.denormalize(data.images[:8]), prediction_labels(model, x, names))
>>> build_first_map_widget(model, x, data.denormalize(x), data.classes)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.base import check_inputs
from prunegrad_lite.attribution.gradients import Gradient
from prunegrad_lite.attribution.prunegrad import PruneGrad

from prunegrad_lite.course.n04_comparing_methods import MethodMaps, method_maps
from prunegrad_lite.course.shared import (
    LessonWidget,
    check_display_images,
    clip_maps,
    image_control,
    prediction_labels,
    show_image,
)
from prunegrad_lite.figures import plot_method_grid

__all__ = [
    "METHOD_STEPS",
    "FirstMapAnswer",
    "answer_kept_fraction",
    "answer_red_pixels",
    "answer_sparsity_zero",
    "build_first_map_widget",
    "plot_examples",
    "plot_method_diagram",
]


def plot_examples(images: Tensor | np.ndarray, labels: Sequence[str], ncols: int = 8) -> Figure:
    """A grid of images with one label each (e.g. true class and prediction).

    Example
    -------
    >>> fig = plot_examples(data.denormalize(data.images[:8]), ["Bag", ...])
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    side = min(1.7, 8.8 / ncols)  # inches per image: at most 8.8 in (880 px) fit a notebook
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(side * ncols, (side + 0.2) * nrows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, label in zip(axes.flat, images, labels):
        ax.set_axis_on()
        show_image(ax, image, label)
    fig.suptitle(f"{n} images with their labels", fontsize=10)
    return fig


def build_first_map_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    class_names: Sequence[str],
    image_names: Sequence[str] | None = None,
) -> LessonWidget:
    """Notebook 00: pick an image, see its plain gradient and its PruneGrad map side by side.

    ``images`` are normalised model inputs (N, C, H, W); ``display_images`` the same images in
    [0, 1] for drawing; PruneGrad uses the model's default sparsity.
    """
    check_display_images(images, display_images)

    def compute(image: int) -> MethodMaps:
        return method_maps(model, images[image : image + 1], ["gradient", "prunegrad"])

    def draw(result: MethodMaps, image: int) -> Figure:
        label = prediction_labels(model, images[image : image + 1], class_names)
        return plot_method_grid(
            display_images[image : image + 1],
            clip_maps(result.maps),
            titles=["gradient", "PruneGrad"],
            class_names=label,
        )

    return LessonWidget(
        "Your first PruneGrad map: pick an image",
        {"image": image_control(len(images), image_names)},
        compute,
        draw,
    )


# ---------------------------------------------------------------- exercises: the answers, checked


@dataclass
class FirstMapAnswer:
    """What an answer of notebook 00 measured: one value per image, and what it shows."""

    what: str  # the quantity, in words
    values: np.ndarray  # (N,)
    claim: str  # the checked statement

    def __str__(self) -> str:
        return f"{self.what}: {np.round(self.values, 4).tolist()}\n-> {self.claim}"


def answer_sparsity_zero(model: nn.Module, inputs: Tensor) -> FirstMapAnswer:
    """Check: PruneGrad at sparsity 0 prunes nothing, so its map is the plain gradient."""
    grad = Gradient(model).attribute(inputs)
    pg = PruneGrad(model, sparsity=0.0).attribute(inputs)
    diff = (pg - grad).abs().flatten(1).amax(1).double().cpu().numpy()
    assert torch.equal(pg, grad), "PruneGrad at sparsity 0 should be the plain gradient"
    return FirstMapAnswer(
        "max |PruneGrad(sparsity 0) - gradient| per image", diff, "the same map, bit for bit"
    )


def answer_red_pixels(model: nn.Module, inputs: Tensor, epsilon: float = 1e-2) -> FirstMapAnswer:
    """Check: a small step along the gradient map (red up, blue down) raises the class logit.

    ``x + epsilon * g / ||g||`` with ``g`` the plain gradient of the predicted class: to first
    order the logit rises by ``epsilon * ||g||`` and the opposite step lowers it as much. Asserts
    the rise and the fall for every image; the values are the rises.
    """
    x = check_inputs(model, inputs)
    with torch.no_grad():
        logits = model(x)
    t = logits.argmax(1)
    g = Gradient(model).attribute(x, t)
    step = epsilon * g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (g.ndim - 1))
    with torch.no_grad():
        base = logits.gather(1, t.view(-1, 1))[:, 0]
        up = model(x + step).gather(1, t.view(-1, 1))[:, 0] - base
        down = model(x - step).gather(1, t.view(-1, 1))[:, 0] - base
    assert (up > 0).all() and (down < 0).all(), "the step along the gradient should raise S_c"
    return FirstMapAnswer(
        f"rise of the class logit for a step of norm {epsilon} along the map",
        up.double().cpu().numpy(),
        "every rise is > 0, and the opposite step lowers the logit",
    )


def answer_kept_fraction(model: nn.Module, inputs: Tensor) -> FirstMapAnswer:
    """Check: PruneGrad keeps at most ``1 - sparsity`` of the neurons (ties are pruned).

    The threshold is the ``sparsity`` percentile of the scores and a neuron is kept when its score
    is *above* it; every neuron tied with the threshold goes, so the kept fraction can fall below
    ``1 - sparsity`` (far below when many scores are 0). Asserts ``kept <= 1 - sparsity``, up
    to the one neuron the percentile's interpolation may add.
    """
    pg = PruneGrad(model)
    ex = pg.explain(inputs)
    kept = ex.kept_fraction.cpu().numpy()
    total = sum(ex.neurons_per_site)
    assert (kept <= 1 - pg.sparsity + 1.0 / total).all(), "kept more than 1 - sparsity"
    return FirstMapAnswer(
        f"fraction of neurons kept at sparsity {pg.sparsity}",
        kept,
        f"never more than 1 - sparsity = {1 - pg.sparsity:.3f}",
    )


# ---------------------------------------------------------------- the method at a glance


#: The boxes of :func:`plot_method_diagram`, left to right: (title, text).
METHOD_STEPS = (
    ("input x", "an image,\nclass c to explain\n(default: the\npredicted one)"),
    (
        "1. scores",
        "one forward and\none backward pass:\n|a * dS_c/da| for\nevery neuron\n(ReLU output)",
    ),
    (
        "2. masks",
        "per image,\nthreshold = the\n100*sparsity\npercentile of all\nits scores; keep\nscore > threshold",
    ),
    ("3. gradient", "the same network\nwith every ReLU\noutput times its\nmask:\ndS_c^pruned / dx"),
    ("map", "signed, shaped\nlike x (PruneGrad's\nattribution)"),
)


def plot_method_diagram() -> Figure:
    """PruneGrad's three steps as a diagram: input -> scores -> masks -> gradient -> map.

    The boxes are :data:`METHOD_STEPS`; the notebooks 01, 02 and 03 take one step each.

    Example
    -------
    >>> fig = plot_method_diagram()
    """
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(8.8, 3.0), layout="constrained")  # a notebook's width
    ax.set_xlim(0, len(METHOD_STEPS) * 2.5)
    ax.set_ylim(0, 3)
    ax.axis("off")
    colors = ["0.92", "#fde0dd", "#fde0dd", "#fde0dd", "0.92"]
    notebook = ["", "notebook 01", "notebook 02", "notebook 03", ""]
    for k, ((title, text), color) in enumerate(zip(METHOD_STEPS, colors)):
        x0 = k * 2.5 + 0.15
        box = FancyBboxPatch(
            (x0, 0.35), 2.0, 2.3, boxstyle="round,pad=0.05", fc=color, ec="0.3", lw=1
        )
        ax.add_patch(box)
        ax.text(x0 + 1.0, 2.4, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x0 + 1.0, 1.4, text, ha="center", va="center", fontsize=8)
        if notebook[k]:
            ax.text(x0 + 1.0, 0.5, notebook[k], ha="center", va="center", fontsize=8, color="0.35")
        if k + 1 < len(METHOD_STEPS):
            ax.annotate(
                "",
                xy=(x0 + 2.55, 1.5),
                xytext=(x0 + 2.1, 1.5),
                arrowprops={"arrowstyle": "-|>", "lw": 1.5, "color": "0.2", "mutation_scale": 16},
                zorder=5,
            )
    ax.set_title(
        "PruneGrad (arXiv 1911.11081): prune the neurons unimportant for this input and class,\n"
        "then take the input gradient of what is left",
        fontsize=10,
    )
    return fig
