"""Notebook 05, sanity checks: every method's map of the same images as the model is randomised.

Used by ``notebooks/05_sanity_checks.ipynb``.

The sanity-check benchmark (:func:`~prunegrad_lite.sanity_checks`) reports similarities; here
we keep the maps themselves at **every** cascading stage, so that a learner can step through
them (:func:`build_sanity_widget`). The stages, the re-initialisation and its seeds are the
benchmark's own (:func:`~prunegrad_lite.benchmarks.randomisation_stages`, ``randomise_stage_``
and the same per-stage generator), so stage ``k`` here shows the network the benchmark measured
at step k.

The widget writes under each map its Spearman rank correlation of ``|map|`` with the original
model's map of the same image (:func:`panel_similarities`), the number the benchmark averages.

The exercises' answers (each computes its evidence and ``assert``s the claim of the answer):
:func:`constant_map_answer` (a map that became constant is not a pass),
:func:`fresh_noise_answer` (why "lower is better" would crown fresh noise) and
:func:`guided_backprop_answer` (Guided Backprop once every layer is random).

Example
-------
>>> cascade = cascading_maps(model, x[:2], ["gradient", "guided_backprop", "prunegrad"])
>>> cascade.stages[:3]                       # ['original', 'fc', 'layer3.conv2']
>>> cascade.maps[1]["guided_backprop"]       # (2, C, H, W) after randomising the logits layer
>>> panel_similarities(cascade, 1)["gradient"]   # (2,) Spearman |map| with the original maps
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import math

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.base import check_inputs, check_model, resolve_target
from prunegrad_lite.attribution.controls import RandomMap
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.sanity import (
    stage_generator,  # the benchmark's per-stage seeding, so the weights are the same
    randomisation_stages,
    randomise_stage_,
)
from prunegrad_lite.benchmarks.similarity import constant_maps, map_similarities, spearman
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.shared import SLIDER, LessonWidget, clip_maps
from prunegrad_lite.figures import plot_method_grid
from prunegrad_lite.maps import to_display_image

__all__ = [
    "CascadingMaps",
    "ConstantMapAnswer",
    "FreshNoiseAnswer",
    "GuidedBackpropAnswer",
    "build_sanity_widget",
    "cascading_maps",
    "constant_map_answer",
    "fresh_noise_answer",
    "guided_backprop_answer",
    "panel_similarities",
]


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
        _label_similarities(fig, len(shown), list(result), panel_similarities(cascade, stage))
        what = (
            "the original model" if stage == 0
            else f"stage 1 randomised ({cascade.stages[1]})" if stage == 1
            else f"stages 1-{stage} randomised (logits down to {cascade.stages[stage]})"
        )  # fmt: skip
        # the second line is the gap between this title and the column titles
        fig.suptitle(f"Maps of {what}\nunder each map: Spearman ρ of |map| with the "
                     "original model's map (a method that passes moves away from 1)",
                     fontsize=10, linespacing=1.6)  # fmt: skip
        fig.get_layout_engine().set(h_pad=0.12)
        fig.set_figheight(fig.get_figheight() + 0.5)  # room for the two-line title
        return fig

    return LessonWidget("Cascading randomisation: move down the network", {"stage": control},
                        compute, draw)  # fmt: skip


# ------------------------------------------------------------------ the similarity of each panel


def panel_similarities(cascade: CascadingMaps, stage: int) -> dict[str, np.ndarray]:
    """Method -> (N,) Spearman rank correlation of ``|map|`` at ``stage`` with the original.

    The benchmark's ``spearman_abs`` for these images and weights (NaN, not 0, where a map
    became constant: the widget shows that case in words). Stage 0 gives 1 everywhere.

    Example
    -------
    >>> panel_similarities(cascade, 2)["gradient"]      # array([0.41, 0.37])
    """
    original, now = cascade.maps[0], cascade.maps[stage]
    return {
        m: map_similarities(original[m].cpu(), now[m].cpu(), ("spearman_abs",))["spearman_abs"]
        .double()
        .numpy()
        for m in now
    }


def _label_similarities(
    fig: Figure, n: int, methods: list[str], sims: dict[str, np.ndarray]
) -> None:
    """Write each panel's similarity under it (the grid's axes come first in ``fig.axes``)."""
    axes = np.array(fig.axes[: n * (len(methods) + 1)]).reshape(n, len(methods) + 1)
    for col, m in enumerate(methods, start=1):
        for row in range(n):
            v = float(sims[m][row])
            text = "constant map: ρ undefined" if math.isnan(v) else f"ρ = {v:.2f}"
            axes[row, col].set_xlabel(text, fontsize=8)


# ------------------------------------------------------------------------ the exercises' answers


def _score_mean(result: BenchmarkResult, method: str, name: str) -> float:
    return float(result.score(method, name).mean)


@dataclass(frozen=True)
class ConstantMapAnswer:
    """Exercise 1: what the similarity measures make of a map that became constant."""

    spearman_of_constant: float  # SciPy's Spearman of a constant map with the original: NaN
    counted_as: float  # what the benchmark counts it as (SanityConfig.constant_similarity)
    gradient_at_top: float  # the gradient's mean Spearman |map| after the top stage, for scale
    most_constant: dict[str, tuple[int, str]]  # method -> (most constant maps at one step, where)
    maps_per_step: int  # maps behind each count (draws x images)

    def __str__(self) -> str:
        counts = "\n".join(
            f"  {m:<22} {c:>4} of {self.maps_per_step}" + (f"  ({where})" if c else "")
            for m, (c, where) in self.most_constant.items()
        )
        return (
            f"Spearman of a blank map with the original: {self.spearman_of_constant} "
            f"(undefined); the benchmark counts it as {self.counted_as:g}, below the "
            f"gradient's {self.gradient_at_top:.3f} after the top stage.\n"
            f"Most maps that became constant at one randomisation step, per method:\n{counts}"
        )


def _most_constant(sanity: BenchmarkResult) -> dict[str, tuple[int, str]]:
    """Method -> (the most constant maps at one step of any variant, "variant, after stage")."""
    names = [s["name"] for s in sanity.settings.get("stages", [])]
    best: dict[str, tuple[int, str]] = {m: (0, "") for m in sanity.methods}
    for variant, per_method in sanity.settings.get("constant_maps", {}).items():
        for m, counts in per_method.items():
            for step, c in enumerate(counts[1:], start=1):
                if m in best and c > best[m][0]:
                    stage = names[step - 1] if step - 1 < len(names) else str(step)
                    best[m] = (int(c), f"{variant}, stage {stage}")
    return best


def constant_map_answer(
    model: nn.Module, images: Tensor, sanity: BenchmarkResult
) -> ConstantMapAnswer:
    """A blank map scores like a perfect pass, though it says nothing about the weights.

    ``sanity`` is the notebook's :func:`~prunegrad_lite.sanity_checks` result (its constant-map
    counts and the gradient's score); the blank map is compared with the gradient's map of
    ``images`` on ``model``. Asserts that Spearman is undefined for a constant map, that the
    benchmark counts it as 0 (a better "pass" than the gradient's), and that this is below
    the gradient's own similarity after the top stage.
    """
    original = method_maps(model, images, ["gradient"]).maps["gradient"].cpu()
    blank = torch.zeros_like(original)
    undefined = spearman(original.abs().amax(1), blank.abs().amax(1))  # (N,) NaN
    counted = map_similarities(original, blank, ("spearman_abs",), constant_value=0.0)
    assert bool(constant_maps(blank).all()) and bool(torch.isnan(undefined).all())
    assert bool((counted["spearman_abs"] == 0.0).all())  # what sanity_checks records
    gradient_top = _score_mean(sanity, "gradient", "spearman_abs@top")
    assert 0.0 < gradient_top, "a blank map would not score below the gradient"
    per_step = int(sanity.settings.get("maps_per_step", sanity.settings.get("num_images", 0)))
    return ConstantMapAnswer(float(undefined[0]), 0.0, gradient_top, _most_constant(sanity),
                             per_step)  # fmt: skip


@dataclass(frozen=True)
class FreshNoiseAnswer:
    """Exercise 2: two maps that ignore the model, one redrawn at every call, one seeded."""

    fresh_noise: float  # mean Spearman |map| of two independent noise maps (new draw per call)
    seeded_noise: float  # the same with the seeded control "random": the same map every call
    methods_at_top: dict[str, float]  # each method's mean Spearman |map| after the top stage

    def __str__(self) -> str:
        ranking = sorted({"fresh noise": self.fresh_noise, **self.methods_at_top}.items(),
                         key=lambda kv: kv[1])  # fmt: skip
        lines = [f"  {i}. {m:<22} {v:+.3f}" for i, (m, v) in enumerate(ranking, start=1)]
        return (
            "Ranked by 'lower similarity is better' after the top stage:\n"
            + "\n".join(lines)
            + f"\nThe seeded noise map 'random' (the same map every call): {self.seeded_noise:.3f}"
        )


def fresh_noise_answer(
    model: nn.Module, images: Tensor, sanity: BenchmarkResult, seed: int = 0
) -> FreshNoiseAnswer:
    """Fresh noise would top a "lower is better" ranking, yet it ignores the model entirely.

    Two maps of ``images`` drawn independently (:class:`~prunegrad_lite.RandomMap` with one
    consumed generator: a new map per call) and the seeded control (the same map every call)
    are compared as the benchmark compares a map before and after randomisation. Asserts that
    fresh noise is near 0 and below every method of ``sanity`` after the top stage, and that
    the seeded noise map, which ignores the model just as much, is exactly 1.
    """
    gen = torch.Generator().manual_seed(seed)
    fresh = RandomMap(model, seed=gen)
    a, b = fresh.attribute(images).cpu(), fresh.attribute(images).cpu()
    noise = float(map_similarities(a, b, ("spearman_abs",))["spearman_abs"].mean())
    seeded = RandomMap(model, seed=seed)
    same = map_similarities(seeded.attribute(images).cpu(), seeded.attribute(images).cpu(),
                            ("spearman_abs",))["spearman_abs"]  # fmt: skip
    at_top = {m: _score_mean(sanity, m, "spearman_abs@top") for m in sanity.methods}
    at_top = {m: v for m, v in at_top.items() if math.isfinite(v)}
    assert abs(noise) < 0.1, f"two independent noise maps correlate: {noise}"
    assert noise < min(at_top.values()), "a method is below fresh noise"
    assert bool((same == 1.0).all())
    return FreshNoiseAnswer(noise, float(same.mean()), at_top)


@dataclass(frozen=True)
class GuidedBackpropAnswer:
    """Exercise 3: Guided Backprop after the top stage and after every stage."""

    at_top: float  # mean Spearman |map| after the top stage (cascading)
    at_all: float  # after every stage
    edge_at_all: float  # the edge detector, which never looks at the weights
    stages: int  # cascading stages

    def __str__(self) -> str:
        return (
            f"Guided Backprop, Spearman |map| with its original map: {self.at_top:.3f} after "
            f"the top stage, {self.at_all:.3f} after all {self.stages} stages "
            f"(edge detector: {self.edge_at_all:.3f})"
        )


def guided_backprop_answer(sanity: BenchmarkResult) -> GuidedBackpropAnswer:
    """Guided Backprop depends on the weights once enough of them are random.

    Reads ``sanity`` (with "guided_backprop" and "edge" among its methods). Asserts that
    Guided Backprop's similarity falls from the top stage to the last one and ends below the
    edge detector's, which is the same map at every stage.
    """
    top = _score_mean(sanity, "guided_backprop", "spearman_abs@top")
    all_ = _score_mean(sanity, "guided_backprop", "spearman_abs@all")
    edge = _score_mean(sanity, "edge", "spearman_abs@all")
    assert all_ < top, "Guided Backprop's similarity does not fall further down the network"
    assert all_ < edge, "Guided Backprop is as weight-independent as an edge detector"
    stages = len(sanity.settings.get("stages", []))
    return GuidedBackpropAnswer(top, all_, edge, stages)
