"""Notebook 08, putting it together: every method on one benchmark score, and a widget to pick it.

Used by ``notebooks/08_putting_it_together.ipynb`` (its results come from
:func:`~prunegrad_lite.course.n07_roar.course_results`).

Example
-------
>>> course = course_results(["sanity", "pixel", "roar"])
>>> fig = plot_scores(course.results["pixel"], "lerf@1%")
>>> build_scores_widget(course.results)
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.course.shared import LessonWidget

__all__ = ["build_scores_widget", "plot_scores"]


def plot_scores(result: BenchmarkResult, score: str) -> Figure:
    """One benchmark score for every method: bars of the mean with the std as error bars.

    The title says the benchmark, the score and which direction is better; the spread is the
    sample std over images (pixel perturbation, sanity checks) or training seeds (ROAR).
    """
    rows = [s for s in result.scores if s.name == score]
    if not rows:
        raise ValueError(
            f"{result.benchmark} has no score {score!r}; it has {result.score_names()}"
        )
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(rows) + 1.6), layout="constrained")
    y = np.arange(len(rows))[::-1]
    colors = ["tab:red" if s.method.startswith("prunegrad") else "tab:blue" for s in rows]
    colors = ["0.6" if s.method in ("random", "edge") else c for s, c in zip(rows, colors)]
    ax.barh(y, [s.mean for s in rows], xerr=[s.std for s in rows], color=colors, capsize=3)
    ax.set_yticks(y, [s.method for s in rows], fontsize=8)
    unit = "seeds" if result.benchmark == "roar" else "images"
    ax.set_xlabel(f"{score} (mean ± std over {rows[0].n} {unit})")
    better = rows[0].better or "neither"
    ax.set_title(f"{result.benchmark} on {result.model}: {score} ({better} is better)", fontsize=9)
    return fig


def build_scores_widget(results: Mapping[str, BenchmarkResult]) -> LessonWidget:
    """Notebook 08: pick a benchmark score, see it for every method (mean ± std).

    ``results`` maps a benchmark name to its result, e.g. ``course.results``. The result is
    the list of :class:`~prunegrad_lite.benchmarks.Score` shown.
    """
    options = [(f"{b}: {name}", (b, name)) for b, r in results.items() for name in r.score_names()]
    if not options:
        raise ValueError("no scores in the results")
    control = widgets.Dropdown(options=options, value=options[0][1], description="score",
                               layout=widgets.Layout(width="50%"))  # fmt: skip

    def compute(score: tuple[str, str]) -> list:
        bench, name = score
        return [s for s in results[bench].scores if s.name == name]

    def draw(result: list, score: tuple[str, str]) -> Figure:
        return plot_scores(results[score[0]], score[1])

    return LessonWidget("Every method on one score", {"score": control}, compute, draw)
