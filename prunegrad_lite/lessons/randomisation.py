"""Lesson 5, sanity checks: every method's map of the same images as the model is randomised.

The sanity-check benchmark (:func:`~prunegrad_lite.sanity_checks`) reports similarities; here
we keep the maps themselves at **every** cascading stage, so that a learner can step through
them. The stages, the re-initialisation and its seeds are the benchmark's own
(:func:`~prunegrad_lite.benchmarks.randomisation_stages`, ``randomise_stage_`` and the same
per-stage generator), so stage ``k`` here shows the network the benchmark measured at step k.

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

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.base import check_inputs, check_model, resolve_target
from prunegrad_lite.benchmarks.sanity import (
    _stage_generator,  # the benchmark's per-stage seeding, so the weights are the same
    randomisation_stages,
    randomise_stage_,
)
from prunegrad_lite.lessons.comparison import compute_maps

__all__ = ["CascadingMaps", "cascading_maps"]


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
    maps = [compute_maps(net, images, methods, options, target).maps]
    for i, stage in enumerate(stages):
        randomise_stage_(net, stage, _stage_generator(seed, i), init_std)
        maps.append(compute_maps(net, images, methods, options, target).maps)
    return CascadingMaps(["original", *(s.name for s in stages)], maps, target)
