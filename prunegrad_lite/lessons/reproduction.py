"""Lessons 7 and 8, the benchmarks at course size: one preset, results cached between runs.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from prunegrad_lite.benchmarks.reproduce import PRESETS, Preset, reproduce
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.teaching import smoke_mode

__all__ = ["COURSE_PRESET", "CourseResults", "course_preset", "course_results"]

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
