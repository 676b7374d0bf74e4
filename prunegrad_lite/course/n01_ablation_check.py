"""Notebook 01, checking the Taylor score: remove single neurons and compare with the estimate.

Used by ``notebooks/01_neuron_importance.ipynb`` (its "is the estimate right?" section), next
to :mod:`~prunegrad_lite.course.n01_neuron_importance`. The score PruneGrad prunes by,
``|a dS_c/da|``, is a first-order estimate of what removing a neuron does to the logit:
:func:`taylor_vs_ablation` measures the true effect neuron by neuron and
:func:`plot_ablation_check` draws one against the other.

Example
-------
>>> check = taylor_vs_ablation(model, x[0], neurons=150)
>>> check.spearman          # close to 1 when the first-order estimate orders neurons well
>>> fig = plot_ablation_check(check)
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from torch import Tensor, nn

from prunegrad_lite.attribution.base import TargetLike, check_inputs, preserve_model_state
from prunegrad_lite.attribution.pruning import apply_masks
from prunegrad_lite.course.n01_neuron_importance import taylor_parts

__all__ = ["AblationCheck", "plot_ablation_check", "taylor_vs_ablation"]


@dataclass
class AblationCheck:
    """The Taylor estimate ``a * dS_c/da`` of single neurons next to the true effect of removing them.

    One row per ablated neuron (``K`` of them): ``true_change = S_c - S_c(a_i -> 0)``, the
    class logit's drop when that one neuron alone is set to 0, and ``taylor = a_i * dS_c/da_i``,
    its first-order estimate. ``spearman`` is the rank correlation of ``|taylor|`` with
    ``|true_change|``: how well the score PruneGrad prunes by orders the neurons by their real
    effect.
    """

    sites: list[int]  # (K,) site index of each neuron
    names: list[str]  # (K,) site name of each neuron
    positions: list[int]  # (K,) flat index of each neuron within its site's (*shape) tensor
    activation: np.ndarray  # (K,) a_i
    gradient: np.ndarray  # (K,) dS_c/da_i
    taylor: np.ndarray  # (K,) a_i * dS_c/da_i, signed
    true_change: np.ndarray  # (K,) S_c - S_c with neuron i removed, signed
    logit: float  # S_c of the unpruned network
    target: int  # the explained class c
    spearman: float  # rank correlation of |taylor| and |true_change|


def taylor_vs_ablation(
    model: nn.Module,
    image: Tensor,
    target: TargetLike = None,
    neurons: int = 150,
    seed: int = 0,
) -> AblationCheck:
    """Remove single active neurons one at a time and compare the logit's change with its estimate.

    ``S_c(a_i -> 0) ~ S_c - a_i dS_c/da_i`` (first-order Taylor expansion around the actual
    activation), so ``a_i dS_c/da_i`` estimates the drop and ``|a_i dS_c/da_i|`` is PruneGrad's
    score. ``neurons`` active neurons (``a > 0``) of one image are chosen across the whole range of
    scores (one at each of ``neurons`` evenly spaced score quantiles, a seeded random one within
    each), and all are ablated in one batched forward pass: copy ``k`` of the image carries a mask
    that zeroes neuron ``k`` only. Inactive neurons are left out: their score and their true effect
    are both exactly 0.

    Example
    -------
    >>> check = taylor_vs_ablation(model, x[0], neurons=150)
    >>> check.spearman          # close to 1 when the first-order estimate orders neurons well
    """
    if neurons < 2:
        raise ValueError(f"ablate at least 2 neurons to correlate, got neurons={neurons}")
    x = image if image.ndim == 4 else image.unsqueeze(0)  # (1, C, H, W)
    if x.shape[0] != 1:
        raise ValueError(f"give one image, (C, H, W) or (1, C, H, W); got {tuple(image.shape)}")
    parts = taylor_parts(model, x, target)
    x = check_inputs(model, x)  # on the model's device, as taylor_parts used it
    t = int(parts.target[0])
    acts = torch.cat([a.flatten(1) for a in parts.activations], 1)[0]  # (M,) all neurons
    grads = torch.cat([g.flatten(1) for g in parts.gradients], 1)[0]  # (M,)
    site_of = torch.cat(
        [torch.full((s.numel,), i, dtype=torch.long) for i, s in enumerate(parts.sites)]
    ).to(acts.device)  # (M,)
    active = (acts > 0).nonzero().flatten()  # indices of the active neurons
    if len(active) < 2:
        raise ValueError("fewer than 2 active neurons for this image: nothing to compare")
    k = min(neurons, len(active))
    order = active[(acts[active] * grads[active]).abs().argsort()]  # active, by score
    gen = torch.Generator().manual_seed(seed)
    edges = torch.linspace(0, len(order), k + 1)
    offsets = torch.rand(k, generator=gen)
    picks = (edges[:-1] + offsets * (edges[1:] - edges[:-1])).long().clamp_max(len(order) - 1)
    chosen = order[picks.to(order.device)]  # (K,) one neuron per score quantile
    masks = torch.ones(k, acts.numel(), device=acts.device, dtype=acts.dtype)  # (K, M)
    masks[torch.arange(k, device=acts.device), chosen] = 0.0
    per_site = list(masks.split([s.numel for s in parts.sites], dim=1))
    per_site = [m.view(k, *s.shape) for m, s in zip(per_site, parts.sites)]
    with preserve_model_state(model), torch.no_grad(), apply_masks(model, per_site):
        ablated = model(x.expand(k, *x.shape[1:]))[:, t]  # (K,)
    logit = float(parts.logits[0, t])
    true_change = (logit - ablated.double()).cpu().numpy()
    a = acts[chosen].double().cpu().numpy()
    g = grads[chosen].double().cpu().numpy()
    taylor = a * g
    rho = float(spearmanr(np.abs(taylor), np.abs(true_change)).statistic)
    sites = site_of[chosen].cpu().tolist()
    starts = np.cumsum([0] + [s.numel for s in parts.sites])
    positions = [int(c) - int(starts[i]) for c, i in zip(chosen.cpu().tolist(), sites)]
    return AblationCheck(
        sites=sites,
        names=[parts.sites[i].name for i in sites],
        positions=positions,
        activation=a,
        gradient=g,
        taylor=taylor,
        true_change=true_change,
        logit=logit,
        target=t,
        spearman=rho,
    )


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
