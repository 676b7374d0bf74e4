"""Notebook 01, neuron importance: activations, their gradients, the Taylor score ``|a dS_c/da|``.

Used by ``notebooks/01_neuron_importance.ipynb`` (its ablation check is in
:mod:`~prunegrad_lite.course.n01_ablation_check`, its two widgets in
:mod:`~prunegrad_lite.course.n01_widgets`).

:func:`taylor_parts` keeps the two factors of PruneGrad's step 1 apart (the package's
:func:`~prunegrad_lite.neuron_scores` returns only their product), so a learner can see that a
neuron matters when it is both active and influential. :func:`layer_score_stats` summarises the
scores layer by layer and :func:`top_channels` picks the channels whose neurons score highest;
:func:`plot_taylor_parts`, :func:`plot_channel_scores` and :func:`plot_layer_scores` draw them
(the widgets of :mod:`~prunegrad_lite.course.n01_widgets` let a learner browse channels).

Example
-------
>>> parts = taylor_parts(model, x[:4])                    # 4 images, predicted classes
>>> print(format_layer_stats(layer_score_stats(parts)))
>>> channels, maps = top_channels(parts.scores[3], sample=0, k=8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite, intercept_activations
from prunegrad_lite.attribution.base import (
    TargetLike,
    check_inputs,
    check_model,
    preserve_model_state,
    resolve_target,
    target_scores,
)
from prunegrad_lite.course.shared import show_image
from prunegrad_lite.figures import MAGNITUDE_CMAP, SIGNED_CMAP

__all__ = [
    "LayerStats",
    "TaylorParts",
    "format_layer_stats",
    "layer_score_stats",
    "plot_channel_scores",
    "plot_layer_scores",
    "plot_taylor_parts",
    "taylor_parts",
    "top_channels",
]

_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])


@dataclass
class TaylorParts:
    """Activations, gradients and Taylor scores of every neuron, per activation site.

    ``activations[l]``, ``gradients[l]`` and ``scores[l]`` have shape ``(N, *sites[l].shape)``;
    ``scores[l] == |activations[l] * gradients[l]|``, exactly what ``neuron_scores`` returns.
    """

    sites: list[ActivationSite]
    activations: list[Tensor]  # a, per site (N, *shape), >= 0 after a ReLU
    gradients: list[Tensor]  # dS_c/da, per site (N, *shape), signed
    logits: Tensor  # (N, K) of the unpruned network
    target: Tensor  # (N,) explained classes

    @property
    def scores(self) -> list[Tensor]:
        """The Taylor scores ``|a * dS_c/da|`` per site, (N, *shape)."""
        return [(a * g).abs() for a, g in zip(self.activations, self.gradients)]


def taylor_parts(model: nn.Module, inputs: Tensor, target: TargetLike = None) -> TaylorParts:
    """One forward and one backward pass of the unpruned network, keeping ``a`` and ``dS_c/da``.

    ``target=None`` explains the predicted class. Inputs are checked and moved to the model's
    device like any attribution call; the model is left unchanged. Results stay on that device.

    Example
    -------
    >>> parts = taylor_parts(model, x)
    >>> [(s.name, a.shape) for s, a in zip(parts.sites, parts.activations)]
    """
    check_model(model)
    x = check_inputs(model, inputs)
    acts: list[Tensor] = []

    def record(site: ActivationSite, out: Tensor) -> Tensor:
        acts.append(out)
        return out

    with preserve_model_state(model), torch.enable_grad():
        xg = x.requires_grad_(True)  # puts every activation in the graph
        with intercept_activations(model, record) as sites:
            logits = model(xg)  # (N, K)
        t = resolve_target(target, logits)
        grads = torch.autograd.grad(target_scores(logits, t).sum(), acts, allow_unused=True)
    grads = [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads)]
    return TaylorParts(
        list(sites), [a.detach() for a in acts], [g.detach() for g in grads], logits.detach(), t
    )


@dataclass(frozen=True)
class LayerStats:
    """Score statistics of one activation site, averaged over the samples."""

    index: int
    name: str
    shape: tuple[int, ...]
    neurons: int  # per sample
    inactive: float  # fraction of neurons with a = 0 (dead for this input): their score is 0
    never_active: float  # fraction with a = 0 for every sample (dead for the whole batch)
    zero_score: float  # fraction with score 0 (inactive, or no gradient reaches them)
    mean_score: float  # mean |a dS/da| over the site's neurons
    max_score: float  # largest score at the site (mean over samples of the per-sample max)
    share: float  # the site's share of the sample's total score (sums to 1 over sites)


def layer_score_stats(parts: TaylorParts) -> list[LayerStats]:
    """Per site: neurons, inactive and zero-score fractions, mean/max score, share of the total.

    Every statistic is computed per sample, then averaged over the samples, except
    ``never_active``: the neurons inactive for every sample of the batch.

    Example
    -------
    >>> stats = layer_score_stats(taylor_parts(model, x))
    >>> sum(s.share for s in stats)          # 1.0
    """
    scores = parts.scores
    totals = sum(s.flatten(1).double().sum(1) for s in scores)  # (N,)
    totals = torch.where(totals > 0, totals, torch.ones_like(totals))
    rows = []
    for site, a, s in zip(parts.sites, parts.activations, scores):
        flat = s.flatten(1).double()  # (N, M_l)
        rows.append(
            LayerStats(
                index=site.index,
                name=site.name,
                shape=site.shape,
                neurons=site.numel,
                inactive=(a.flatten(1) == 0).double().mean().item(),
                never_active=(a.flatten(1) == 0).all(0).double().mean().item(),
                zero_score=(flat == 0).double().mean().item(),
                mean_score=flat.mean().item(),
                max_score=flat.amax(1).mean().item(),
                share=(flat.sum(1) / totals).mean().item(),
            )
        )
    return rows


def format_layer_stats(stats: Sequence[LayerStats]) -> str:
    """A plain-text table of :func:`layer_score_stats`, one row per site."""
    head = (
        f"{'#':>2}  {'site':<18} {'shape':<10} {'neurons':>8} {'a=0':>6} {'never':>6} "
        f"{'score=0':>8} "
        f"{'mean score':>11} {'max score':>10} {'share':>6}"
    )
    rows = [head]
    for s in stats:
        shape = "x".join(map(str, s.shape))
        rows.append(
            f"{s.index:>2}  {s.name[:18]:<18} {shape:<10} {s.neurons:>8} {s.inactive:>6.1%} "
            f"{s.never_active:>6.1%} "
            f"{s.zero_score:>8.1%} {s.mean_score:>11.2e} {s.max_score:>10.2e} {s.share:>6.1%}"
        )
    return "\n".join(rows)


def top_channels(site_values: Tensor, sample: int = 0, k: int = 8) -> tuple[list[int], Tensor]:
    """The ``k`` channels of one site with the largest summed value for one sample, and their maps.

    ``site_values`` is one site's scores (or activations, gradients), (N, C, H, W) or (N, C).
    Returns the channel indices, largest first, and their maps (k, H, W) on the CPU
    ((k, 1, 1) for a fully connected site).

    Example
    -------
    >>> channels, maps = top_channels(parts.scores[2], sample=0, k=8)   # maps: (8, H, W)
    """
    v = site_values[sample].detach().cpu()
    v = v.view(v.shape[0], 1, 1) if v.ndim == 1 else v  # (C, H, W)
    k = min(k, v.shape[0])
    totals = v.flatten(1).sum(1)  # (C,)
    channels = totals.argsort(descending=True)[:k]
    return channels.tolist(), v[channels]


# -------------------------------------------------- figures: a channel's a, dS/da and score; layers


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
    fig, axes = plt.subplots(1, 4, figsize=(8.8, 2.6), layout="constrained")
    show_image(axes[0], image, "input")
    glim = max(float(np.abs(g).max()), 1e-12)
    panels = [
        (a, MAGNITUDE_CMAP, 0.0, max(float(a.max()), 1e-12), "activation a", "a (after ReLU)"),
        (g, SIGNED_CMAP, -glim, glim, "gradient dS_c/da", "logit per unit a"),
        (
            s,
            MAGNITUDE_CMAP,
            0.0,
            max(float(s.max()), 1e-12),
            "Taylor score |a dS_c/da|",
            "score (logit units)",
        ),
    ]
    for k, (ax, (values, cmap, vmin, vmax, title, label)) in enumerate(zip(axes[1:], panels)):
        im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (positions)", fontsize=8)
        if k == 0:  # one y label for the three panels: side by side they ran into colour bars
            ax.set_ylabel("y (positions)", fontsize=8)
        ax.tick_params(labelsize=7)
        bar = fig.colorbar(im, ax=ax, shrink=0.85)
        bar.set_label(label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
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
        show_image(axes.pop(0), image, "input")
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
        figsize=(8.8, 0.45 * len(names) + 2.0),
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
    bx.set_xlabel("fraction of the site's neurons\n/ of the total score")
    bx.legend(fontsize=7, loc="lower right")
    bx.set_title("Dead neurons and where the score lies", fontsize=9)
    n = len(parts.target)
    fig.suptitle(
        f"Neuron importance per activation site ({n} images, predicted class)", fontsize=10
    )
    return fig
