"""Notebook 07, ROAR: the modified training images, and the benchmarks at course size, cached.

Used by ``notebooks/07_roar.ipynb``; :func:`course_results` also by notebook 08.

:func:`roar_images` makes ROAR's modified images for a few examples with the benchmark's own
pieces (:func:`~prunegrad_lite.benchmarks.rank_pixels`, ``mask_top_pixels``): the most
important fraction of the pixels replaced by the per-channel mean of the training images, as
every training and test image is before retraining (:func:`build_roar_widget` shows them).

The widget also shows, under each ROAR image, its removal mask: the only input of the
mask-only control's network (white where ROAR replaced a pixel).

ROAR retrains a network per method, fraction and seed, which a notebook cannot afford to redo
on every run. :func:`course_results` therefore reads the committed results of a full run
(``docs/results``, written by ``prunegrad-lite reproduce`` with preset "full") and says which
run it shows (:attr:`CourseResults.source`); without them it goes through
:func:`~prunegrad_lite.reproduce` (whose cache keeps every retrained cell and every finished
result) with :data:`COURSE_PRESET`, a few minutes on a 2-core CPU. In smoke mode it always
runs the tiny "smoke" preset, so CI exercises the same code.

:func:`roar_findings` writes what a ROAR result shows, read from it (no number in the prose);
the exercises' answers: :func:`mask_leak_answer` (predict the mask-only accuracy) and
:func:`retrainings_answer` (what a preset costs, counted).

Example
-------
>>> course = course_results(["roar"])          # the committed full run, else computed
>>> print(course.source)
>>> fig = plot_curves(course.results["roar"])
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.benchmarks.presets import roar_config
from prunegrad_lite.benchmarks.removal import fraction_label, removal_masks
from prunegrad_lite.benchmarks.reproduce import PRESETS, Preset, reproduce
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.roar import mask_top_pixels
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.n06_pixel_perturbation import (
    PerturbedImages,
    pixel_ranks,
    probability_changes,
)
from prunegrad_lite.course.shared import SLIDER, LessonWidget, show_image
from prunegrad_lite.maps import to_display_image
from prunegrad_lite.runtime import smoke_mode

__all__ = [
    "COMMITTED_RESULTS",
    "COURSE_PRESET",
    "CourseResults",
    "build_roar_widget",
    "course_preset",
    "course_results",
    "describe_roar_preset",
    "plot_roar_masks",
    "roar_findings",
    "roar_images",
]

#: the committed full run, seen from ``notebooks/`` (the notebooks' working directory)
COMMITTED_RESULTS = "../docs/results"
#: The notebooks' benchmark sizes: the "quick" preset on fewer images, with two ROAR seeds
#: (error bars) of one epoch on 2,000 / 500 images for the gradient, PruneGrad and the random
#: control: 20 retrainings (2 of them the reference), and 12 for ROAR's mask-only control
#: (the random ranking's mask is chance by construction; no other-class control, no
#: convergence check). One short epoch is far from converged: a
#: demonstration of the protocol; compare with the paper using a full run.
COURSE_PRESET = dataclasses.replace(
    PRESETS["quick"],
    name="course",
    pixel_images=100,
    sanity_images=8,
    roar_train=2000,
    roar_test=500,
    roar_fractions=(0.1, 0.5, 0.9),
    roar_seeds=(0, 1),
    roar_epochs=1,
    roar_methods=("gradient", "prunegrad", "random"),
    roar_other_class=(),
    roar_longer=0,
)


def course_preset() -> Preset:
    """:data:`COURSE_PRESET`, or the "smoke" preset when ``PRUNEGRAD_LITE_SMOKE=1``."""
    return PRESETS["smoke"] if smoke_mode() else COURSE_PRESET


@dataclass
class CourseResults:
    """Benchmark results for the notebooks, and where they came from."""

    results: dict[str, BenchmarkResult]  # benchmark name -> result
    source: str  # "a full reproduce run in ..." or "computed with the course preset ..."
    sparsity: float | None  # PruneGrad's sparsity in these results (None when not recorded)
    run: dict | None = None  # the run's run.json when loaded (preset, versions, seconds)
    preset: Preset | None = None  # the preset computed with (None when loaded)


def _full_run(folder: Path, benchmarks: Sequence[str], model: str) -> tuple[dict, dict] | None:
    """The results of a finished full-preset ``reproduce`` run in ``folder`` and its run.json,
    if every result asked for is there."""
    try:
        run = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if run.get("preset", {}).get("name") != "full":
        return None
    paths = {b: folder / f"{b}_{model}.json" for b in benchmarks}
    if not all(p.is_file() for p in paths.values()):
        return None
    return {b: BenchmarkResult.load(p) for b, p in paths.items()}, run


def _describe_run(folder: str | os.PathLike, run: dict) -> str:
    """One line: where a loaded run is and what it was (preset, seed, device, versions, time)."""
    parts = [f"preset {run.get('preset', {}).get('name')!r}"]
    if "seed" in run:
        parts.append(f"seed {run['seed']}")
    if run.get("device"):
        parts.append(f"on {run['device']}")
    if run.get("torch_version"):
        parts.append(f"torch {run['torch_version']}")
    total = (run.get("seconds") or {}).get("total")
    if total is not None:
        parts.append(f"{float(total) / 60:.0f} min")
    return f"a full `prunegrad-lite reproduce` run in {folder} ({', '.join(parts)})"


def course_results(
    benchmarks: Sequence[str],
    model: str = "fashion_mnist",
    *,
    out: str | os.PathLike = "../runs/course",
    full_run: str | os.PathLike | None = COMMITTED_RESULTS,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> CourseResults:
    """Results of ``benchmarks`` ("sanity", "pixel", "roar") on the embedded ``model``.

    Outside smoke mode, a finished full run in ``full_run`` is used when it holds every result
    asked for: by default the committed one, :data:`COMMITTED_RESULTS` (``docs/results`` seen
    from ``notebooks/``); pass ``"../runs/reproduce"`` for your own ``prunegrad-lite
    reproduce`` run, or None to compute. Otherwise :func:`~prunegrad_lite.reproduce` runs
    :func:`course_preset` into ``out``; its cache makes a second call (or the next notebook)
    load instead of recompute. :attr:`CourseResults.source` says which run the results are.

    Example
    -------
    >>> course = course_results(["pixel", "sanity"], out="runs/course", full_run=None)
    >>> course.results["pixel"].score("prunegrad", "lerf@1%")
    """
    benchmarks = list(dict.fromkeys(benchmarks))
    if not smoke_mode() and full_run is not None:
        found = _full_run(Path(full_run), benchmarks, model)
        if found is not None:
            results, run = found
            sparsity = (run.get("sparsity") or {}).get(model)
            return CourseResults(results, _describe_run(full_run, run), sparsity, run)
    preset = course_preset()
    report = reproduce(
        benchmarks=benchmarks, models=model, preset=preset, out=out, device=device, seed=seed,
        progress=False,
    )  # fmt: skip
    results = {b: report.results[(b, model)] for b in benchmarks if (b, model) in report.results}
    source = f"computed with the {preset.name!r} preset (cache: {out})"
    return CourseResults(results, source, report.sparsity.get(model), None, preset)


def describe_roar_preset(preset: Preset) -> str:
    """What ROAR does under a preset: rankings, fractions, seeds, recipe and networks trained.

    Read from the preset (:func:`~prunegrad_lite.benchmarks.presets.roar_config`), so it
    cannot go stale.

    Example
    -------
    >>> print(describe_roar_preset(PRESETS["full"]))
    """
    config = roar_config(preset, preset.roar_methods)
    names = [*preset.roar_methods, *(f"{m}@other_class" for m in config.other_class)]
    train = "all" if preset.roar_train is None else f"{preset.roar_train:,}"
    test = "all" if preset.roar_test is None else f"{preset.roar_test:,}"
    return "\n".join([
        f"preset {preset.name!r}:",
        f"  rankings   {', '.join(names)}",
        f"  fractions  {', '.join(fraction_label(f) for f in config.fractions)}",
        f"  seeds      {', '.join(str(s) for s in config.seeds)}",
        f"  recipe     {config.recipe.epochs} epochs of {config.network}, batch "
        f"{config.recipe.batch_size}; best-validation checkpoint ({config.validation:.0%} held out)",
        f"  images     {train} training, {test} test (Fashion-MNIST, shipped subset)",
        f"  mask-only  {'yes' if config.mask_only else 'no'}; longer reference "
        f"{config.longer_reference or 'none'}",
        f"  networks   {config.num_cells(names)} retrainings",
    ])  # fmt: skip


# ------------------------------------------------------------------------------ ROAR's images


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
    ``masks`` (N, H, W) are the removal masks: the mask-only control's inputs.

    Example
    -------
    >>> out = roar_images(model, train.images[:4], maps, 0.5, train.images.mean((0, 2, 3)))
    """
    x = images.detach().float().cpu()
    ranks = pixel_ranks(maps, seed)
    modified = {
        m: mask_top_pixels(x, rank, fraction, fill.detach().float().cpu())
        for m, rank in ranks.items()
    }
    size = tuple(x.shape[-2:])
    masks = {m: removal_masks(rank, [fraction], "morf", size)[0] for m, rank in ranks.items()}
    return PerturbedImages(
        float(fraction), "roar", modified, probability_changes(model, x, modified), None, masks,
        "training mean",
    )  # fmt: skip


def plot_roar_masks(
    images: Tensor | np.ndarray,
    modified: Mapping[str, Tensor | np.ndarray],
    masks: Mapping[str, Tensor],
    title: str,
) -> Figure:
    """Two rows per image: what ROAR's network sees, and what the mask-only network sees.

    ``images`` (N, ...) and ``modified[method]`` are display images in [0, 1]; ``masks[method]``
    (N, H, W) bool, True where ROAR replaced a pixel (drawn white, as the mask-only network
    gets it). The first column is the input (and, below it, an empty mask).
    """
    names = list(modified)
    n, ncols = len(images), len(names) + 1
    # 1.6 in per panel (1.9 drew two images 860 px tall, far past a 768 px laptop screen)
    fig, axes = plt.subplots(2 * n, ncols, figsize=(1.6 * ncols, 3.3 * n + 0.8), squeeze=False,
                             layout="constrained")  # fmt: skip
    for row in range(n):
        top, bottom = axes[2 * row], axes[2 * row + 1]
        show_image(top[0], images[row], "input" if row == 0 else None)
        top[0].set_ylabel("ROAR's input", fontsize=8)
        blank = torch.zeros_like(next(iter(masks.values()))[row], dtype=torch.float32)
        show_image(bottom[0], blank, None)
        bottom[0].set_ylabel("mask-only input", fontsize=8)
        bottom[0].set_xlabel("(nothing removed)", fontsize=7)
        for col, name in enumerate(names, start=1):
            show_image(top[col], modified[name][row], name if row == 0 else None)
            mask = masks[name][row].float()
            show_image(bottom[col], mask, None)
            bottom[col].set_xlabel(f"{mask.mean():.0%} of the pixels white", fontsize=7)
    fig.suptitle(title, fontsize=10, linespacing=1.6)
    return fig


def build_roar_widget(
    model: nn.Module,
    images: Tensor,
    fill: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    methods: Sequence[str],
    method_options: Mapping[str, dict] | None = None,
) -> LessonWidget:
    """Notebook 07: a fraction slider showing ROAR's modified images and their removal masks.

    ``fill`` (C,) is the per-channel mean of the training images (what ROAR puts in place of
    the removed pixels). Maps are computed once when the widget is built. Under each modified
    image is its removal mask, the mask-only control's input. The result is a
    :class:`~prunegrad_lite.course.PerturbedImages` with ``order="roar"`` and ``masks``.
    """
    options = {m: o for m, o in (method_options or {}).items() if m in methods}
    maps = method_maps(model, images, methods, options).maps
    shown = to_display_image(images, mean, std)
    control = widgets.SelectionSlider(options=[("10%", 0.1), ("30%", 0.3), ("50%", 0.5),
                                               ("70%", 0.7), ("90%", 0.9)], value=0.5,
                                      description="top pixels removed", **SLIDER)  # fmt: skip

    def compute(fraction: float):
        return roar_images(model, images, maps, fraction, fill)

    def draw(result, fraction: float) -> Figure:
        modified = {m: to_display_image(x, mean, std) for m, x in result.images.items()}
        title = (f"ROAR: the top {fraction:.0%} pixels of each method replaced by the training "
                 "mean (a network is retrained on such images)\nbelow each: the removal mask, "
                 "all that the mask-only control's network sees")  # fmt: skip
        return plot_roar_masks(shown, modified, result.masks, title)

    return LessonWidget("ROAR: move the fraction of removed pixels", {"fraction": control},
                        compute, draw)  # fmt: skip


# ------------------------------------------------------------------ what a ROAR result shows


def _acc(result: BenchmarkResult, method: str, name: str) -> float | None:
    try:
        return float(result.score(method, name).mean)
    except KeyError:
        return None


def roar_findings(result: BenchmarkResult) -> str:
    """What a ROAR result shows, as Markdown bullets read from it: per fraction, the methods
    ordered by accuracy with the random control and the reference, and the mask-only
    accuracies against chance. Means only: whether a difference is resolved is for the paired
    verdicts (:func:`~prunegrad_lite.benchmarks.compare_with_paper`).

    Example
    -------
    >>> pgl.course.markdown(roar_findings(course.results["roar"]))
    """
    s = result.settings
    fractions = [float(f) for f in s.get("fractions", [])]
    seeds = s.get("seeds", [])
    ref = s.get("reference_accuracy")
    ref_mean = float(np.mean(ref)) if isinstance(ref, list) and ref else ref
    lines = [
        f"- {len(result.methods)} rankings, {len(fractions)} fractions, {len(seeds)} seed(s)"
        + (f"; reference accuracy (nothing removed) {ref_mean:.1%}" if ref_mean else "")
        + "."
    ]
    for f in fractions:
        label = fraction_label(f)
        accs = {m: _acc(result, m, f"acc@{label}") for m in result.methods}
        ranked = sorted(((a, m) for m, a in accs.items() if a is not None))
        text = ", ".join(f"{m} {a:.1%}" for a, m in ranked)
        lines.append(f"- {label} removed, ROAR accuracy from lowest: {text}.")
        masks = {m: _acc(result, m, f"mask_only@{label}") for m in result.methods}
        masks = {m: a for m, a in masks.items() if a is not None}
        if masks:
            chance = s.get("chance")
            above = f" (chance {chance:.0%})" if chance else ""
            mtext = ", ".join(f"{m} {a:.1%}" for m, a in masks.items())
            lines.append(f"- {label} removed, mask-only accuracy{above}: {mtext}.")
    return "\n".join(lines) + "\n"
