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

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor, nn

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

__all__ = ["build_first_map_widget", "plot_examples"]


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
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.7 * ncols, 1.9 * nrows + 0.4), squeeze=False, layout="constrained"
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
