"""The benchmarks' figures: curves per method with their spread, and the sanity-check maps.

Like :mod:`prunegrad_lite.figures` (whose grid this module reuses), every function returns the
:class:`~matplotlib.figure.Figure` it drew, with labelled axes and a title that says what was
measured, and changes no global matplotlib state.

Example
-------
>>> fig = plot_curves(result)            # any BenchmarkResult
>>> fig = plot_sanity_maps(sanity)       # the maps of one image as the layers are randomised
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from prunegrad_lite.benchmarks.removal import fraction_label
from prunegrad_lite.benchmarks.stats import bootstrap_interval
from prunegrad_lite.figures import plot_method_grid
from prunegrad_lite.io import atomic_write
from prunegrad_lite.maps import clip_percentile, to_display_image

if TYPE_CHECKING:  # a name for type hints only: results imports this module to draw itself
    from prunegrad_lite.benchmarks.results import BenchmarkResult

__all__ = ["METRIC_LABELS", "plot_curves", "plot_sanity_maps", "save_sanity_maps"]

#: y-axis label of each metric
METRIC_LABELS = {
    "prob_change": "|p_c(x) - p_c(x')| / p_c(x)",
    "accuracy": "test accuracy after retraining",
    "spearman_abs": "Spearman rank corr. of |map|",
    "spearman": "Spearman rank corr. of signed map",
    "ssim": "SSIM (window 5) of |map| / max",
    "hog": "correlation of HOG features",
    "spearman_abs_defined": "Spearman |map|, constant maps left out",
    "spearman_defined": "Spearman signed, constant maps left out",
    "hog_defined": "HOG correlation, constant maps left out",
    "constant": "fraction of constant maps",
    "abs_delta_x": "mean |x' - x| over removed pixels",
}
_VARIANT_TITLES = {
    "lerf": "least relevant first (LeRF): lower is better",
    "morf": "most relevant first (MoRF): higher is better",
    "roar": "ROAR: remove top pixels, retrain (lower is better)",
    "mask_only": "the removal mask alone, trained on (chance = no leak)",
    "cascading": "cascading randomisation, logits down (lower = passes)",
    "independent": "independent randomisation, one stage at a time",
    "cascading_reset": "cascading, reset_parameters() init (lower = passes)",
    "independent_reset": "independent, reset_parameters() init",
    "lerf_blur": "LeRF, blurred replacement: lower is better",
    "morf_blur": "MoRF, blurred replacement: higher is better",
    "lerf_noisy_linear": "LeRF, noisy linear imputation: lower is better",
    "morf_noisy_linear": "MoRF, noisy linear imputation: higher is better",
}
_X_LABELS = {
    "pixel": "fraction of pixels removed",
    "roar": "fraction of top pixels removed",
    "sanity": "randomised up to stage",
}
_STYLE = {  # one fixed look per method of the paper's comparison; others take the cycle
    "prunegrad": ("tab:red", "-", 2.4),
    "gradient": ("tab:blue", "-", 1.4),
    "grad_x_input": ("tab:cyan", "-", 1.4),
    "integrated_gradients": ("tab:green", "-", 1.4),
    "smoothgrad": ("tab:olive", "-", 1.4),
    "guided_backprop": ("tab:orange", "-", 1.4),
    "gradcam": ("tab:purple", "-", 1.4),
    "fullgrad": ("tab:pink", "-", 1.4),
    "random": ("0.45", "--", 1.4),
    "edge": ("0.1", ":", 1.4),
}


def _interval(
    result: BenchmarkResult, method: str, metric: str, variant: str, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """95% percentile-bootstrap interval of each point's mean from its per-unit values (crossed
    over seeds x images when there are seeds; 1000 resamples, seed 0); None without units."""
    if not all(result.has_units(method, metric, variant, int(k)) for k in steps):
        return None
    lows, highs = [], []
    for k in steps:
        values = result.unit_values(method, metric, variant, int(k))
        _, low, high, _, _ = bootstrap_interval(values, resamples=1000, interval="percentile")
        lows.append(low)
        highs.append(high)
    return np.array(lows), np.array(highs)


def plot_curves(
    result: BenchmarkResult, panels: list[tuple[str, str]] | None = None, band: str = "ci95"
) -> Figure:
    """One panel per (metric, variant), one line per method with a shaded band (or error bars).

    Parameters
    ----------
    result : any benchmark's :class:`~prunegrad_lite.benchmarks.results.BenchmarkResult`.
    panels : which (metric, variant) pairs to draw; default the result's
        ``settings["figure_panels"]`` when it names some, else all of them.
    band : ``"ci95"`` (default) shades the 95% percentile-bootstrap interval of the mean, from
        the per-unit values (over seeds x images where there are seeds; ROAR: error bars), and
        falls back to mean ± 1.96 standard errors when a result has no per-unit values (ROAR
        without them: ± std over seeds, as the title says); ``"sem"`` mean ± standard error,
        ``"std"`` mean ± std, ``"none"`` no band. The tables report the std.

    Example
    -------
    >>> fig = plot_curves(pixel_result, panels=[("prob_change", "lerf")])
    >>> fig.savefig("lerf.png")
    """
    if band not in ("ci95", "sem", "std", "none"):
        raise ValueError(f"band must be 'ci95', 'sem', 'std' or 'none', got {band!r}")
    preferred = [tuple(p) for p in result.settings.get("figure_panels") or []]
    preferred = [p for p in preferred if p in result.panels()]
    panels = panels or preferred or result.panels()
    bootstrapped: list[bool] = []
    if not panels:
        raise ValueError("the result has no curves to draw")
    # at most two panels side by side: with the legend, 8.8 in (880 px), what a notebook's
    # output shows unshrunk (three were 15.6 in, shown at 59% in JupyterLab at 1366 px)
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(6.0, 3.5 * ncols + 1.8), 3.3 * nrows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for ax, (metric, variant) in zip(axes.flat, panels):
        labels: np.ndarray | None = None
        for i, method in enumerate(result.methods):
            try:
                x, mean, std, labels = result.curve(method, metric, variant)
            except KeyError:
                continue
            color, style, width = _STYLE.get(method, (f"C{i % 10}", "-", 1.4))
            steps = np.array([p.step for p in _points(result, method, metric, variant)])
            ci = _interval(result, method, metric, variant, steps) if band == "ci95" else None
            bootstrapped.append(ci is not None)
            if result.benchmark == "roar":
                yerr = std if ci is None else np.stack([mean - ci[0], ci[1] - mean])
                ax.errorbar(
                    x,
                    mean,
                    yerr=yerr,
                    color=color,
                    ls=style,
                    lw=width,
                    marker="o",
                    ms=3.5,
                    capsize=3,
                    label=method,
                )
            else:
                ax.plot(x, mean, color=color, ls=style, lw=width, marker="o", ms=3, label=method)
                if ci is not None:
                    ax.fill_between(x, ci[0], ci[1], color=color, alpha=0.12, lw=0)
                elif band != "none":
                    n = np.array([p.n for p in _points(result, method, metric, variant)])
                    half = std if band == "std" else std / np.sqrt(np.maximum(n, 1))
                    half = 1.96 * half if band == "ci95" else half
                    ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.12, lw=0)
        if result.benchmark == "sanity" and labels is not None:
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        elif labels is not None and result.benchmark == "pixel":
            ax.xaxis.set_major_formatter(lambda v, _: fraction_label(v))
        elif labels is not None:
            ax.set_xticks(x)
            ax.set_xticklabels([lab.split(" ")[0] for lab in labels])
        ax.set_xlabel(_X_LABELS.get(result.benchmark, "x"))
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(_VARIANT_TITLES.get(variant, variant), fontsize=9)
        if variant == "mask_only" and result.settings.get("chance") is not None:
            ax.axhline(result.settings["chance"], color="0.3", ls=":", lw=1, label="chance")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    for ax in list(axes.flat)[1 : len(panels)]:  # lines only some panels have (e.g. chance)
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name not in names:
                handles.append(handle)
                names.append(name)
    fig.legend(handles, names, loc="outside right upper", fontsize=8, title="method")
    title = _TITLES.get(result.benchmark, result.benchmark)
    if band == "ci95" and bootstrapped and all(bootstrapped):
        spread = "mean with its 95% bootstrap interval"
    elif band == "ci95" and result.benchmark != "roar":
        spread = "mean ± 1.96 standard errors"
    elif result.benchmark == "roar" and band in ("ci95", "std", "sem"):
        spread = "mean ± std"
    elif band == "none":
        spread = "mean"
    else:
        spread = f"mean ± {'std' if band == 'std' else 'standard error'}"
    fig.suptitle(f"{title} on {result.model}\n({spread} over {_units(result)})", fontsize=10)
    return fig


_TITLES = {
    "pixel": "Pixel perturbation",
    "roar": "ROAR (remove and retrain)",
    "sanity": "Sanity checks: similarity to the original map",
}


def _points(result: BenchmarkResult, method: str, metric: str, variant: str) -> list:
    key = (method, metric, variant)
    return sorted(
        (p for p in result.curves if (p.method, p.metric, p.variant) == key), key=lambda p: p.step
    )


def _units(result: BenchmarkResult) -> str:
    if result.benchmark == "roar":
        return f"{len(result.settings.get('seeds', []))} training seeds"
    draws = result.settings.get("draws", 1)
    images = f"{result.settings.get('num_images', '?')} images"
    return f"{draws} weight draws x {images}" if draws and draws > 1 else images


def plot_sanity_maps(result: BenchmarkResult, image: int = 0, clip: float = 99.5) -> Figure:
    """The maps of one image as the layers are randomised (cascading): one row per method.

    Uses the example maps :func:`~prunegrad_lite.benchmarks.sanity.sanity_checks` keeps
    (``config.example_images`` > 0): columns are the original model, then a few cascading
    stages, each "→ stage" meaning every stage from the logits down to it is randomised. Each
    map is clipped at its ``clip``-th percentile of |value| (default 99.5) before scaling.

    Example
    -------
    >>> fig = plot_sanity_maps(sanity_result)
    """
    ex: dict[str, Any] = result.examples
    if result.benchmark != "sanity" or not ex.get("maps"):
        raise ValueError("needs a sanity-check result with example maps (example_images > 0)")
    methods = ex["methods"]
    x = ex["images"][image]  # (C, H, W)
    mean, std = ex["display"] if ex.get("display") else (0.0, 1.0)
    if ex.get("display") is None:  # no normalisation known: min-max for display
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    img = to_display_image(x, mean, std)  # (H, W, C)
    rows = np.repeat(img[None], len(methods), axis=0)  # one row per method
    maps = {  # (M, C, H, W); a few extreme pixels would wash out the rest of the map
        col: clip_percentile(torch.as_tensor(m[image]), clip) for col, m in ex["maps"].items()
    }
    fig = plot_method_grid(rows, maps, class_names=methods)
    fig.suptitle(
        f"Sanity check on {result.model}: maps as layers are randomised from the logits down\n"
        f"(each clipped at its {clip:g}th percentile of |value|, scaled by its max)",
        fontsize=10,
    )
    return fig


def save_sanity_maps(result: BenchmarkResult, path: str | Path) -> None:
    """Write :func:`plot_sanity_maps` of ``result`` to ``path`` as a PNG (atomically), and close it."""
    fig = plot_sanity_maps(result)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
