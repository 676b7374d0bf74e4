"""Notebook 01, neuron importance: the two widgets that browse channels of any image and layer.

Used by ``notebooks/01_neuron_importance.ipynb`` (section 4, "Your turn: channel score maps"). What they compute and draw is in
:mod:`~prunegrad_lite.course.n01_neuron_importance` (:func:`taylor_parts`, :func:`top_channels`,
:func:`plot_channel_scores`, :func:`plot_taylor_parts`).

Example
-------
>>> w = build_neuron_importance_widget(model, x[:8], data.denormalize(x[:8]))
>>> w.controls["layer"].value = 3             # recomputes and redraws
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.course.n01_neuron_importance import (
    TaylorParts,
    plot_channel_scores,
    plot_taylor_parts,
    taylor_parts,
    top_channels,
)
from prunegrad_lite.course.shared import SLIDER, LessonWidget, check_display_images, image_control

__all__ = ["build_neuron_importance_widget", "build_taylor_parts_widget"]


def _site_dropdown(sites: Any) -> widgets.Dropdown:
    """A dropdown of the activation sites, labelled ``index: name CxHxW``."""
    return widgets.Dropdown(
        options=[(f"{s.index}: {s.name} {'x'.join(map(str, s.shape))}", s.index) for s in sites],
        value=0,
        description="layer",
    )


def build_neuron_importance_widget(
    model: nn.Module, images: Tensor, display_images: Tensor | np.ndarray, top: int = 8
) -> LessonWidget:
    """Notebook 01: pick an image and an activation site, see its highest-scoring channels.

    The result is ``(channels, maps)`` from :func:`~prunegrad_lite.course.top_channels` on the
    Taylor scores ``|a dS_c/da|`` of the predicted class.
    """
    check_display_images(images, display_images)
    sites = taylor_parts(model, images[:1]).sites
    site_control = _site_dropdown(sites)
    parts_cache: dict[int, Any] = {}

    def compute(image: int, layer: int) -> tuple[list[int], Tensor]:
        if image not in parts_cache:  # one forward/backward per image serves every layer
            parts_cache[image] = taylor_parts(model, images[image : image + 1])
        return top_channels(parts_cache[image].scores[layer], sample=0, k=top)

    def draw(result: tuple[list[int], Tensor], image: int, layer: int) -> Figure:
        channels, maps = result
        return plot_channel_scores(channels, maps, display_images[image], sites[layer].name)

    controls = {"image": image_control(len(images), None), "layer": site_control}
    return LessonWidget(
        "Channel score maps |a dS_c/da|: pick an image and a layer", controls, compute, draw
    )


# -------------------------------------------------- the widget: a, dS/da and score side by side


def build_taylor_parts_widget(
    model: nn.Module, images: Tensor, display_images: Tensor | np.ndarray, top: int = 8
) -> LessonWidget:
    """Notebook 01: activation, gradient and Taylor score of one channel, side by side.

    Controls: the image, the activation site and the channel's rank among the site's channels by
    total score (0 = the highest-scoring one, up to ``top - 1``). The result is
    ``(parts, channel)``: the image's :class:`TaylorParts` (predicted class) and the channel shown.
    """
    check_display_images(images, display_images)
    sites = taylor_parts(model, images[:1]).sites
    site_control = _site_dropdown(sites)
    rank = widgets.IntSlider(
        value=0, min=0, max=top - 1, description="channel rank by score", **SLIDER
    )
    parts_cache: dict[int, TaylorParts] = {}

    def compute(image: int, layer: int, rank: int) -> tuple[TaylorParts, int]:
        if image not in parts_cache:  # one forward/backward per image serves every layer
            parts_cache[image] = taylor_parts(model, images[image : image + 1])
        parts = parts_cache[image]
        channels, _ = top_channels(parts.scores[layer], sample=0, k=rank + 1)
        return parts, channels[min(rank, len(channels) - 1)]

    def draw(result: tuple[TaylorParts, int], image: int, layer: int, rank: int) -> Figure:
        parts, channel = result
        return plot_taylor_parts(parts, display_images[image], site=layer, channel=channel)

    controls = {"image": image_control(len(images), None), "layer": site_control, "rank": rank}
    return LessonWidget(
        "Activation, gradient and Taylor score of one channel: pick an image, a layer, a channel",
        controls,
        compute,
        draw,
    )
