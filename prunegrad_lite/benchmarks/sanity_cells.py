"""The sanity checks' independent units of work, as an executor (:mod:`.executor`) runs them:
one randomisation step (init, variant, weight draw, stage).

A step's network is rebuilt from the original by re-drawing its stages from their seeded
generators (for the cascading variant every stage from the logits down to this one, for the
independent variant this stage alone), so a step depends only on its own coordinates and the
seed, never on the steps computed before it, and gives the same values in this process or in a
Ray worker. It reads its values from the run's step cache (:class:`~.sanity_records.StepCache`)
when they are there and otherwise computes and stores them there, atomically.

Example
-------
>>> table, shown = sanity_step(data, SanityStep("authors", "cascading", "cascading", 0, 3, False))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.attribution_maps import (
    MethodOptions,
    maps_for_images,
    on_device,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.randomisation import (
    Stage,
    randomise_stage_,
    reset_stage_,
    stage_generator,
)
from prunegrad_lite.benchmarks.sanity_config import SanityConfig
from prunegrad_lite.benchmarks.sanity_records import StepCache
from prunegrad_lite.benchmarks.similarity import constant_maps, map_similarities

__all__ = ["LOCK_KINDS", "SanityData", "SanityStep", "randomised", "sanity_step", "step_values"]

LOCK_KINDS = ("sanity", "sanity_maps")  # the cache locks a step takes


@dataclass(frozen=True)
class SanityData:
    """What every step of one sanity run shares (sent once to each Ray node)."""

    model: nn.Module  # the original model (eval mode)
    images: Tensor  # (N, C, H, W)
    target: Tensor  # (N,) the original model's predictions
    original: dict[str, Tensor]  # method -> its maps on the original model
    stages: list[Stage]  # from the logits down
    classes: dict[str, Any]  # method -> Attribution class
    method_options: MethodOptions | None
    config: SanityConfig
    seed: int
    device: Any
    cache: StepCache
    examples: int  # images whose maps the example figure shows


@dataclass(frozen=True)
class SanityStep:
    """One step: ``step`` is 1 for the top stage (0 is the original model)."""

    init: str  # "authors" or "reset"
    variant: str  # "cascading" or "independent"
    vname: str  # the variant's name in the result ("cascading_reset", ...)
    draw: int
    step: int
    example: bool  # are its maps shown in the example figure?


def randomised(model: nn.Module, data: SanityData, step: SanityStep) -> nn.Module:
    """A copy of ``model`` with this step's stages re-drawn from their seeded generators."""
    net = copy.deepcopy(model)
    index = step.step - 1
    for i in range(index + 1) if step.variant == "cascading" else [index]:
        generator = stage_generator(data.seed, i, step.draw)
        if step.init == "authors":
            randomise_stage_(net, data.stages[i], generator, data.config.init_std)
        else:
            reset_stage_(net, data.stages[i], generator)
    return net


def step_values(original: Tensor, maps: Tensor, measures: tuple[str, ...]) -> Tensor:
    """One method's values at a step, (K+1, N) float64: each measure's similarity to the
    original maps, then 1.0 where the map is constant (the rows of a stored step)."""
    sims = map_similarities(original, maps, measures)
    rows = [torch.as_tensor(sims[m]).to(torch.float64) for m in measures]
    return torch.stack([*rows, constant_maps(maps).to(torch.float64)])


def sanity_step(data: SanityData, step: SanityStep) -> tuple[Tensor, list[Tensor] | None]:
    """One step's values of every method, (M, K+1, N) float64, and (when ``step.example``) the
    maps of the first images per method: from the step cache, or computed and stored there."""
    config = data.config
    measures = tuple(config.measures)
    done = data.cache.load(step.vname, step.draw, step.step, len(measures), step.example)
    if done is not None:
        return done
    net = randomised(on_device(data.model, data.device), data, step)
    explained = (
        data.target
        if config.target == "original"
        else predict(net, data.images, config.batch_size).argmax(1)
    )
    values, shown = [], []
    for name, original in data.original.items():
        maps = maps_for_images(net, data.images, data.classes[name],
                               options=options_for(data.method_options, name), target=explained,
                               batch_size=config.batch_size, seed=data.seed,
                               progress=False)  # fmt: skip
        values.append(step_values(original, maps, measures))
        shown.append(maps[: data.examples])
    table = torch.stack(values)
    maps_shown = shown if step.example else None
    data.cache.store(step.vname, step.draw, step.step, table, maps_shown)  # releases the locks
    return table, maps_shown
