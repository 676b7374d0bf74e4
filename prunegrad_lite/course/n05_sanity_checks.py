"""Notebook 05, sanity checks: every method's map of the same images as the model is randomised.

Used by ``notebooks/05_sanity_checks.ipynb``.

The sanity-check benchmark (:func:`~prunegrad_lite.sanity_checks`) reports similarities; here
we keep the maps themselves at **every** cascading stage, so that a learner can step through
them (:func:`build_sanity_widget`). The stages, the re-initialisation and its seeds are the
benchmark's own (:func:`~prunegrad_lite.benchmarks.randomisation_stages`, ``randomise_stage_``
and the same per-stage generator), so stage ``k`` here shows the network the benchmark measured
at step k.

Example
-------
>>> cascade = cascading_maps(model, x[:2], ["gradient", "guided_backprop", "prunegrad"])
>>> cascade.stages[:3]                       # ['original', 'fc', 'layer3.conv2']
>>> cascade.maps[1]["guided_backprop"]       # (2, C, H, W) after randomising the logits layer
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.base import check_inputs, check_model, resolve_target
from prunegrad_lite.benchmarks.sanity import (
    stage_generator,  # the benchmark's per-stage seeding, so the weights are the same
    randomisation_stages,
    randomise_stage_,
)
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.shared import SLIDER, LessonWidget, clip_maps
from prunegrad_lite.figures import plot_method_grid
from prunegrad_lite.maps import to_display_image

__all__ = ["CascadingMaps", "build_sanity_widget", "cascading_maps"]


@dataclass
class CascadingMaps:
    """Maps of the same images after each cascading randomisation stage (S stages + original)."""

    stages: list[str]  # "original", then the stage names from the logits down
    maps: list[dict[str, Tensor]]  # per stage: method -> (N, C, H, W), on the inputs' device
    target: Tensor  # (N,) classes the original model predicts, explained at every stage


def cascading_maps(
    model: nn.Module,
    images: Tensor,
    methods: Sequence[str],
    *,
    depth: int | None = None,
    init_std: float = 0.1,
    seed: int = 0,
    method_options: Mapping[str, dict] | None = None,
) -> CascadingMaps:
    """Randomise the model from the logits down, stage by stage, and keep every method's maps.

    ``depth``, ``init_std`` and ``seed`` mean what they mean in
    :class:`~prunegrad_lite.SanityConfig` and :func:`~prunegrad_lite.sanity_checks` (defaults:
    one stage per layer, N(0, 0.1**2), seed 0). The model is deep-copied, never changed; maps
    explain the class the original model predicts. Cost: (S + 1) x the methods' cost.

    Example
    -------
    >>> cascade = cascading_maps(model, x[:1], ["gradient", "prunegrad"], depth=1)
    >>> len(cascade.stages) == len(cascade.maps)
    True
    """
    check_model(model)
    x = check_inputs(model, images)
    net = copy.deepcopy(model).eval()  # the caller's model is never touched
    with torch.no_grad():
        target = resolve_target(None, net(x))
    options = {m: dict(o) for m, o in (method_options or {}).items() if m in methods}
    stages = randomisation_stages(net, x[:1], depth)
    maps = [method_maps(net, images, methods, options, target).maps]
    for i, stage in enumerate(stages):
        randomise_stage_(net, stage, stage_generator(seed, i), init_std)
        maps.append(method_maps(net, images, methods, options, target).maps)
    return CascadingMaps(["original", *(s.name for s in stages)], maps, target)


def build_sanity_widget(
    model: nn.Module,
    images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    methods: Sequence[str],
    method_options: Mapping[str, dict] | None = None,
    depth: int | None = None,
    seed: int = 0,
) -> LessonWidget:
    """Notebook 05: a stage slider showing every method's maps as the model is randomised.

    All stages are computed when the widget is built (:func:`~prunegrad_lite.course.cascading_maps`,
    the sanity checks' stages and weights); ``mean``/``std`` are the normalisation in [0, 1]
    pixel units, for display. The result is the method -> maps dict of the chosen stage.
    """
    cascade = cascading_maps(
        model, images, methods, depth=depth, seed=seed, method_options=method_options
    )
    shown = to_display_image(images, mean, std)
    labels = ["original" if i == 0 else f"{i}: {name}" for i, name in enumerate(cascade.stages)]
    control = widgets.SelectionSlider(
        options=[(label, i) for i, label in enumerate(labels)], value=0,
        description="randomised down to", layout=widgets.Layout(width="60%"), **SLIDER,
    )  # fmt: skip

    def compute(stage: int) -> dict[str, Tensor]:
        return cascade.maps[stage]

    def draw(result: dict[str, Tensor], stage: int) -> Figure:
        fig = plot_method_grid(shown, clip_maps(result))
        what = "the original model" if stage == 0 else (
            f"stages 1-{stage} randomised (logits down to {cascade.stages[stage]})"
        )  # fmt: skip
        fig.suptitle(f"Maps of {what}: a method that passes changes", fontsize=10)
        fig.get_layout_engine().set(h_pad=0.12)  # room between this title and the column titles
        return fig

    return LessonWidget("Cascading randomisation: move down the network", {"stage": control},
                        compute, draw)  # fmt: skip
