"""Notebook 07, ROAR: the modified training images, and the benchmarks at course size, cached.

Used by ``notebooks/07_roar.ipynb``; :func:`course_results` also by notebook 08.

:func:`roar_images` makes ROAR's modified images for a few examples with the benchmark's own
pieces (:func:`~prunegrad_lite.benchmarks.rank_pixels`, ``mask_top_pixels``): the most
important fraction of the pixels replaced by the per-channel mean of the training images, as
every training and test image is before retraining (:func:`build_roar_widget` shows them).

ROAR retrains a network per method, fraction and seed, which a notebook cannot afford to redo
on every run. :func:`course_results` therefore goes through
:func:`~prunegrad_lite.reproduce` (whose cache keeps every retrained cell and every finished
result) with :data:`COURSE_PRESET`, a few minutes on a 2-core CPU, and prefers the results of
a finished full run (``prunegrad-lite reproduce``, preset "full") when one is present. In
smoke mode it always runs the tiny "smoke" preset, so CI exercises the same code.

Example
-------
>>> course = course_results(["roar"])          # minutes the first time, then from the cache
>>> course.source
'computed with the course preset (cache: ../runs/course)'
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
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.benchmarks.reproduce import PRESETS, Preset, reproduce
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.roar import mask_top_pixels
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.n06_pixel_perturbation import (
    PerturbedImages,
    pixel_ranks,
    plot_removed_pixels,
    probability_changes,
)
from prunegrad_lite.course.shared import SLIDER, LessonWidget
from prunegrad_lite.maps import to_display_image
from prunegrad_lite.runtime import smoke_mode

__all__ = [
    "COURSE_PRESET",
    "CourseResults",
    "build_roar_widget",
    "course_preset",
    "course_results",
    "roar_images",
]
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
    sparsity: float | None  # PruneGrad's sparsity in these results (None when loaded)


def _full_run(folder: Path, benchmarks: Sequence[str], model: str) -> dict | None:
    """The results of a finished full-preset ``reproduce`` run in ``folder``, if all are there."""
    try:
        run = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if run.get("preset", {}).get("name") != "full":
        return None
    paths = {b: folder / f"{b}_{model}.json" for b in benchmarks}
    if not all(p.is_file() for p in paths.values()):
        return None
    return {b: BenchmarkResult.load(p) for b, p in paths.items()}


def course_results(
    benchmarks: Sequence[str],
    model: str = "fashion_mnist",
    *,
    out: str | os.PathLike = "../runs/course",
    full_run: str | os.PathLike | None = "../runs/reproduce",
    device: str | torch.device | None = None,
    seed: int = 0,
) -> CourseResults:
    """Results of ``benchmarks`` ("sanity", "pixel", "roar") on the embedded ``model``.

    Outside smoke mode, a finished full run in ``full_run`` (the default output folder of
    ``prunegrad-lite reproduce`` seen from ``notebooks/``) is used when it holds every result
    asked for. Otherwise :func:`~prunegrad_lite.reproduce` runs :func:`course_preset` into
    ``out``; its cache makes a second call (or the next notebook) load instead of recompute.

    Example
    -------
    >>> course = course_results(["pixel", "sanity"], out="runs/course", full_run=None)
    >>> course.results["pixel"].score("prunegrad", "lerf@1%")
    """
    benchmarks = list(dict.fromkeys(benchmarks))
    if not smoke_mode() and full_run is not None:
        found = _full_run(Path(full_run), benchmarks, model)
        if found is not None:
            return CourseResults(
                found, f"a full `prunegrad-lite reproduce` run in {full_run}", None
            )
    preset = course_preset()
    report = reproduce(
        benchmarks=benchmarks, models=model, preset=preset, out=out, device=device, seed=seed,
        progress=False,
    )  # fmt: skip
    results = {b: report.results[(b, model)] for b in benchmarks if (b, model) in report.results}
    source = f"computed with the {preset.name!r} preset (cache: {out})"
    return CourseResults(results, source, report.sparsity.get(model))


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

    Example
    -------
    >>> out = roar_images(model, train.images[:4], maps, 0.5, train.images.mean((0, 2, 3)))
    """
    x = images.detach().float().cpu()
    modified = {
        m: mask_top_pixels(x, rank, fraction, fill.detach().float().cpu())
        for m, rank in pixel_ranks(maps, seed).items()
    }
    return PerturbedImages(
        float(fraction), "roar", modified, probability_changes(model, x, modified)
    )


def build_roar_widget(
    model: nn.Module,
    images: Tensor,
    fill: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    methods: Sequence[str],
    method_options: Mapping[str, dict] | None = None,
) -> LessonWidget:
    """Notebook 07: a fraction slider showing the ROAR-modified training images per method.

    ``fill`` (C,) is the per-channel mean of the training images (what ROAR puts in place of
    the removed pixels). Maps are computed once when the widget is built. The result is a
    :class:`~prunegrad_lite.course.PerturbedImages` with ``order="roar"``.
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
                 "mean; a network is retrained on such images")  # fmt: skip
        return plot_removed_pixels(shown, modified, None, title)

    return LessonWidget("ROAR: move the fraction of removed pixels", {"fraction": control},
                        compute, draw)  # fmt: skip
