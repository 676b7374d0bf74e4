"""The course's own figures; the method and benchmark figures are in :mod:`prunegrad_lite.figures`
and :mod:`prunegrad_lite.benchmarks.plots`.

Like those, every function returns the :class:`~matplotlib.figure.Figure` it drew, with labelled
axes, a colour bar where colours carry values, and a title that says what was measured. Nothing
changes matplotlib's global state; close figures with ``plt.close(fig)`` when making many.
Images are display images in [0, 1]: tensors (C, H, W) or numpy (H, W[, C]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.figures import MAGNITUDE_CMAP, SIGNED_CMAP
from prunegrad_lite.lessons.neurons import AblationCheck, TaylorParts, layer_score_stats
from prunegrad_lite.lessons.perturbation import PerturbationGains
from prunegrad_lite.lessons.pruning import PruningSweep

__all__ = [
    "plot_ablation_check",
    "plot_channel_scores",
    "plot_examples",
    "plot_kept_per_site",
    "plot_layer_scores",
    "plot_perturbation_gains",
    "plot_pruning_sweep",
    "plot_removed_pixels",
    "plot_scores",
    "plot_taylor_parts",
]

_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])


def _display(image: Tensor | np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) numpy in [0, 1] from a (C, H, W) tensor or an (H, W[, C]) array."""
    if isinstance(image, Tensor):
        img = image.detach().cpu().double().numpy()
        img = np.moveaxis(img, 0, -1) if img.ndim == 3 else img
    else:
        img = np.asarray(image, dtype=np.float64)
    img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    return np.clip(img, 0.0, 1.0)


def _show(ax, image: Tensor | np.ndarray, title: str | None = None) -> None:
    img = _display(image)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def plot_examples(images: Tensor | np.ndarray, labels: Sequence[str], ncols: int = 8) -> Figure:
    """A grid of images with one label each (e.g. true class and prediction).

    Example
    -------
    >>> fig = plot_examples(data.denormalize(data.images[:8]), ["Bag", ...])
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.7 * ncols, 1.9 * nrows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, label in zip(axes.flat, images, labels):
        ax.set_axis_on()
        _show(ax, image, label)
    fig.suptitle(f"{n} images with their labels", fontsize=10)
    return fig


def plot_taylor_parts(
    parts: TaylorParts, image: Tensor | np.ndarray, site: int, channel: int, sample: int = 0
) -> Figure:
    """One channel of one site: activation ``a``, gradient ``dS_c/da`` and score ``|a dS_c/da|``.

    ``image`` is the sample's display image. Each panel has its own colour bar in the units of
    the quantity (the logit S_c per unit of activation for the gradient).
    """
    a = parts.activations[site][sample].cpu().double()
    g = parts.gradients[site][sample].cpu().double()
    if a.ndim == 1:  # a fully connected site: show the channel as one pixel
        a, g = a.view(-1, 1, 1), g.view(-1, 1, 1)
    a, g = a[channel].numpy(), g[channel].numpy()
    s = np.abs(a * g)
    fig, axes = plt.subplots(1, 4, figsize=(11.5, 3.0), layout="constrained")
    _show(axes[0], image, "input")
    glim = max(float(np.abs(g).max()), 1e-12)
    panels = [
        (a, MAGNITUDE_CMAP, 0.0, max(float(a.max()), 1e-12), "activation a", "a (after ReLU)"),
        (g, SIGNED_CMAP, -glim, glim, "gradient dS_c/da", "dS_c/da (logit per unit a)"),
        (
            s,
            MAGNITUDE_CMAP,
            0.0,
            max(float(s.max()), 1e-12),
            "Taylor score |a dS_c/da|",
            "score (logit units)",
        ),
    ]
    for ax, (values, cmap, vmin, vmax, title, label) in zip(axes[1:], panels):
        im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (positions)")
        ax.set_ylabel("y (positions)")
        fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    name = parts.sites[site].name
    fig.suptitle(
        f"Site {site} ({name}), channel {channel}: a neuron scores high only when it is active "
        "and the logit is sensitive to it",
        fontsize=10,
    )
    return fig


def plot_channel_scores(
    channels: Sequence[int],
    maps: Tensor | np.ndarray,
    image: Tensor | np.ndarray | None = None,
    site_name: str = "",
) -> Figure:
    """Taylor score maps of the top channels of one site (from ``top_channels``), one colour bar.

    All panels share one scale (the largest score shown), so channels can be compared. At most
    five panels per row, so that the figure fits a notebook's width (about 900 px) unshrunk.
    """
    values = maps.detach().cpu().double().numpy() if isinstance(maps, Tensor) else np.asarray(maps)
    k = len(channels)
    panels = k + (image is not None)
    ncols = min(panels, 5)
    nrows = -(-panels // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(1.6 * ncols + 0.9, 1.95 * nrows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    axes = list(axes.flat)
    for ax in axes[panels:]:
        ax.set_axis_off()
    axes = axes[:panels]
    if image is not None:
        _show(axes.pop(0), image, "input")
    vmax = max(float(values.max()), 1e-12)
    for ax, c, m in zip(axes, channels, values):
        im = ax.imshow(m, cmap=MAGNITUDE_CMAP, vmin=0.0, vmax=vmax)
        ax.set_title(f"channel {c}\nsum {m.sum():.2g}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, label="|a dS_c/da| (logit units)", shrink=0.9)
    fig.suptitle(f"Taylor scores of the {k} highest-scoring channels of {site_name}", fontsize=10)
    return fig


def plot_layer_scores(parts: TaylorParts) -> Figure:
    """Per site: the distribution of non-zero scores (log scale) and the fraction of zero scores.

    Left: box plots of ``log10 |a dS_c/da|`` over all neurons with a non-zero score (all
    samples pooled). Right: the fraction of neurons that are inactive (a = 0; score 0).
    """
    stats = layer_score_stats(parts)
    names = [f"{s.index}: {s.name}" for s in stats]
    logs = []
    for scores in parts.scores:
        flat = scores.flatten().cpu().double()
        logs.append(torch.log10(flat[flat > 0]).numpy())
    fig, (ax, bx) = plt.subplots(
        1,
        2,
        figsize=(10.5, 0.45 * len(names) + 1.8),
        layout="constrained",
        gridspec_kw={"width_ratios": [2.2, 1]},
    )
    positions = np.arange(len(names))[::-1]
    # matplotlib 3.10 replaced vert=False by orientation="horizontal" (vert warns from 3.11)
    horizontal = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}
    ax.boxplot(logs, positions=positions, widths=0.6, showfliers=False, **horizontal)
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_xlabel("log10 Taylor score |a dS_c/da| (non-zero scores only)")
    ax.set_title("Score distribution per site (whiskers 1.5 IQR)", fontsize=9)
    bx.barh(positions, [s.inactive for s in stats], color="0.5", label="inactive (a = 0)")
    bx.barh(
        positions,
        [s.share for s in stats],
        height=0.35,
        color="tab:red",
        label="share of total score",
    )
    bx.set_yticks(positions, [])
    bx.set_xlim(0, 1)
    bx.set_xlabel("fraction of the site's neurons / of the total score")
    bx.legend(fontsize=7, loc="lower right")
    bx.set_title("Dead neurons and where the score lies", fontsize=9)
    n = len(parts.target)
    fig.suptitle(
        f"Neuron importance per activation site ({n} images, predicted class)", fontsize=10
    )
    return fig


def _sweep_label(sweep: PruningSweep) -> str:
    return {
        "taylor": "Taylor scores (PruneGrad)",
        "random": "random scores (control)",
        "integrated_gradients": "IG scores (PruneInt)",
    }.get(sweep.scoring, sweep.scoring) + (
        ", per-layer threshold" if sweep.threshold == "layer" else ""
    )


def _sweep_color(sweep: PruningSweep) -> str:
    """One colour per kind of pruning, the same in every figure: blue is PruneGrad's."""
    colors = {"taylor": "tab:blue", "random": "tab:gray", "integrated_gradients": "tab:orange"}
    if sweep.threshold == "layer":
        return {"taylor": "tab:green", "random": "silver"}.get(sweep.scoring, "tab:purple")
    return colors.get(sweep.scoring, "tab:purple")


def plot_kept_per_site(
    sweeps: PruningSweep | Sequence[PruningSweep], level: int = 0, sample: int | None = None
) -> Figure:
    """Fraction of each site's neurons kept at one sparsity, for one or more pruning sweeps.

    ``sweeps`` are :class:`~prunegrad_lite.lessons.PruningSweep` of the same model and inputs
    (e.g. Taylor and random scores, or global and per-layer thresholds), labelled by their
    scoring and threshold. ``level`` indexes their sparsities; ``sample=None`` averages over
    the samples. Each label gives the target probability before and after pruning.
    """
    sweeps = [sweeps] if isinstance(sweeps, PruningSweep) else list(sweeps)
    pick = slice(None) if sample is None else [sample]
    first = sweeps[0]
    s = first.sparsities[level]
    names = [f"{site.index}: {site.name}" for site in first.sites]
    y = np.arange(len(names))[::-1]
    fig, ax = plt.subplots(figsize=(7.0, 0.42 * len(names) + 1.9), layout="constrained")
    height = 0.8 / len(sweeps)
    for i, sweep in enumerate(sweeps):
        ax.barh(
            y + 0.4 - height * (i + 0.5),
            sweep.kept_per_site[level][pick].mean(0),  # (L,)
            height=height,
            color=_sweep_color(sweep),
            label=f"{_sweep_label(sweep)}: p {sweep.prob[pick].mean():.3f} -> "
            f"{sweep.pruned_prob[level][pick].mean():.3f}",
        )
    ax.axvline(1 - s, color="k", ls="--", lw=1, label=f"1 - sparsity = {1 - s:.2f}")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of the site's neurons kept")
    ax.legend(fontsize=7, loc="lower right")
    who = "mean over images" if sample is None else f"image {sample}"
    ax.set_title(
        f"What survives pruning at sparsity {s:.2f} ({who});\n"
        "p = target probability, unpruned -> pruned",
        fontsize=9,
    )
    return fig


def plot_pruning_sweep(
    sweeps: PruningSweep | Sequence[PruningSweep], calibration_change: float | None = 0.15
) -> Figure:
    """Output change against sparsity: relative probability change and surviving predictions.

    Left: mean ``|p - p'| / p`` of the target probability for each sweep (e.g. Taylor pruning
    and the random control), with the calibration target (the authors' 15%). Right: the
    fraction of images whose pruned network still predicts the same class.
    """
    sweeps = [sweeps] if isinstance(sweeps, PruningSweep) else list(sweeps)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.0, 3.6), layout="constrained")
    for sweep in sweeps:
        label, color = _sweep_label(sweep), _sweep_color(sweep)
        ax.plot(sweep.sparsities, sweep.mean_change, "o-", color=color, label=label)
        bx.plot(sweep.sparsities, sweep.same_prediction.mean(1), "o-", color=color, label=label)
    if calibration_change is not None:
        ax.axhline(
            calibration_change,
            color="k",
            ls="--",
            lw=1,
            label=f"calibration target {calibration_change:.0%}",
        )
    ax.set_xlabel("sparsity (fraction of neurons pruned)")
    ax.set_ylabel("mean |p - p'| / p of the target class")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("How much pruning changes the output", fontsize=9)
    bx.set_xlabel("sparsity (fraction of neurons pruned)")
    bx.set_ylabel("fraction of images, same prediction")
    bx.set_ylim(0, 1.05)
    bx.legend(fontsize=8)
    bx.set_title("Does the pruned network still predict the class?", fontsize=9)
    n = sweeps[0].prob.shape[0]
    fig.suptitle(
        f"Input-specific pruning against sparsity ({n} images)",
        fontsize=10,
    )
    return fig


def plot_perturbation_gains(gains: PerturbationGains) -> Figure:
    """Raise of the pruned network's target logit against the perturbation's L2 norm, per direction.

    Mean over images with a band of one standard error.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.0), layout="constrained")
    colors = {
        "prunegrad": "tab:red",
        "iterative": "tab:purple",
        "gradient": "tab:blue",
        "random": "tab:gray",
    }
    labels = {
        "prunegrad": "PruneGrad direction (gradient of the pruned net)",
        "gradient": "plain gradient direction (unpruned net)",
        "random": "random direction",
        "iterative": f"iterative ascent in the pruned net ({gains.steps} steps)",
    }
    for name, values in gains.gains.items():
        mean = values.mean(1)
        err = values.std(1, ddof=1) / np.sqrt(values.shape[1]) if values.shape[1] > 1 else 0 * mean
        ax.plot(
            gains.epsilons,
            mean,
            "--" if name == "iterative" else "-",
            marker="o",
            color=colors.get(name),
            label=labels.get(name, name),
        )
        ax.fill_between(gains.epsilons, mean - err, mean + err, color=colors.get(name), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xticks(gains.epsilons, [f"{e:g}" for e in gains.epsilons])
    ax.minorticks_off()
    ax.set_xlabel("perturbation size epsilon = ||delta||_2 (normalised input units)")
    ax.set_ylabel("S_c(x + delta) - S_c(x), pruned network (logit)")
    ax.legend(fontsize=7)
    n = next(iter(gains.gains.values())).shape[1]
    ax.set_title(
        f"Which perturbation of norm epsilon raises the pruned network's logit most?\n"
        f"(sparsity {gains.sparsity:.2f}, mean and standard error over {n} images)",
        fontsize=9,
    )
    return fig


def plot_removed_pixels(
    images: Tensor | np.ndarray,
    modified: Mapping[str, Tensor | np.ndarray],
    change: Mapping[str, np.ndarray] | None = None,
    title: str = "Images with pixels removed, per method",
) -> Figure:
    """One row per image: the input, then the image each method's ranking leaves.

    ``images`` (N, ...) and each ``modified[method]`` (N, ...) are display images in [0, 1]
    (tensors (N, C, H, W) or numpy (N, H, W[, C])). ``change[method]`` (N,), when given, is
    written under each panel as ``|p - p'| / p``, the measure of pixel perturbation.
    """
    names = list(modified)
    n = len(images)
    ncols = len(names) + 1
    fig, axes = plt.subplots(
        n, ncols, figsize=(1.9 * ncols, 2.0 * n + 0.6), squeeze=False, layout="constrained"
    )
    for row in range(n):
        _show(axes[row, 0], images[row], "input" if row == 0 else None)
        for col, name in enumerate(names, start=1):
            _show(axes[row, col], modified[name][row], name if row == 0 else None)
            if change is not None:
                axes[row, col].set_xlabel(f"|p - p'| / p = {change[name][row]:.3f}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


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


def plot_ablation_check(check: AblationCheck) -> Figure:
    """True logit drop of removing one neuron against its Taylor estimate ``a dS_c/da`` (notebook 01).

    Left: signed, with the line ``y = x`` where the estimate is exact. Right: magnitudes on log
    axes (what PruneGrad ranks by), with the rank correlation in the title.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), layout="constrained")
    est, true = check.taylor, check.true_change
    lim = float(max(np.abs(est).max(), np.abs(true).max(), 1e-12)) * 1.05
    ax = axes[0]
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.plot([-lim, lim], [-lim, lim], color="0.4", lw=1, ls="--", label="y = x (estimate exact)")
    ax.scatter(est, true, s=12, alpha=0.7)
    ax.set(
        xlim=(-lim, lim),
        ylim=(-lim, lim),
        xlabel="Taylor estimate a dS_c/da (logit units)",
        ylabel="true drop S_c - S_c(a -> 0) (logit units)",
        title="signed",
    )
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    floor = 1e-9
    ax.scatter(np.maximum(np.abs(est), floor), np.maximum(np.abs(true), floor), s=12, alpha=0.7)
    lo = max(
        floor, float(min(np.abs(est)[np.abs(est) > 0].min(), np.abs(true)[np.abs(true) > 0].min()))
    )
    ax.plot([lo, lim], [lo, lim], color="0.4", lw=1, ls="--")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="score |a dS_c/da|",
        ylabel="|true drop|",
        title=f"magnitudes: Spearman {check.spearman:.2f}",
    )
    fig.suptitle(
        f"{len(est)} active neurons removed one at a time (class {check.target}, "
        f"logit {check.logit:.2f})"
    )
    return fig
