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

__all__ = [
    "AblationCheck",
    "LastSiteAnswer",
    "OpposingNeuronsAnswer",
    "answer_inactive_neurons",
    "answer_last_site",
    "answer_opposing_neurons",
    "plot_ablation_check",
    "taylor_vs_ablation",
]


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
    site: int | None = None,
) -> AblationCheck:
    """Remove single active neurons one at a time and compare the logit's change with its estimate.

    ``S_c(a_i -> 0) ~ S_c - a_i dS_c/da_i`` (first-order Taylor expansion around the actual
    activation), so ``a_i dS_c/da_i`` estimates the drop and ``|a_i dS_c/da_i|`` is PruneGrad's
    score. ``neurons`` active neurons (``a > 0``) of one image are chosen across the whole range of
    scores (one at each of ``neurons`` evenly spaced score quantiles, a seeded random one within
    each), and all are ablated in one batched forward pass: copy ``k`` of the image carries a mask
    that zeroes neuron ``k`` only. Inactive neurons are left out: their score and their true effect
    are both exactly 0. ``site``: only the neurons of that activation site (its index).

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
    on_site = torch.ones_like(site_of, dtype=torch.bool) if site is None else site_of == site
    if site is not None and not 0 <= site < len(parts.sites):
        raise ValueError(f"site must be in 0..{len(parts.sites) - 1}, got {site}")
    active = ((acts > 0) & on_site).nonzero().flatten()  # indices of the active neurons
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
    fig, axes = plt.subplots(1, 2, figsize=(8.8, 3.9), layout="constrained")
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


# ---------------------------------------------------------------- exercises: the answers, checked


@dataclass
class OpposingNeuronsAnswer:
    """Exercise 1 of notebook 01: neurons whose removal would *raise* the class logit."""

    sparsity: float  # the top ``1 - sparsity`` of the scores are looked at
    opposing_kept: np.ndarray  # (N,) fraction of the top-scored neurons with a dS/da < 0
    ablated: int  # neurons ablated on the first image with a negative estimate
    raised: int  # of those, how many really raised the logit when removed

    def __str__(self) -> str:
        return (
            f"fraction of the top {1 - self.sparsity:.0%} scores with a * dS/da < 0, per image: "
            f"{np.round(self.opposing_kept, 3).tolist()}\n"
            f"first image: {self.raised} of {self.ablated} ablated neurons with a negative "
            "estimate raised the logit when removed"
        )


def answer_opposing_neurons(
    model: nn.Module, inputs: Tensor, sparsity: float = 0.9, neurons: int = 150
) -> OpposingNeuronsAnswer:
    """Check: ``|.|`` ranks neurons that oppose the class (``a dS/da < 0``) as important too.

    Such a neuron lowers the logit; removing it would raise it by about ``|a dS/da|``. The score
    keeps the magnitude only, so these neurons are kept when that magnitude is large. Asserts
    that the top-scored neurons of the batch include opposing ones, and that removing some of
    the first image's opposing neurons did raise its logit.
    """
    parts = taylor_parts(model, inputs)
    signed = torch.cat([(a * g).flatten(1) for a, g in zip(parts.activations, parts.gradients)], 1)
    score = signed.abs()
    thr = torch.quantile(score.double(), sparsity, dim=1, keepdim=True)  # (N, 1)
    top = score.double() > thr
    opposing = ((signed < 0) & top).sum(1).double() / top.sum(1).clamp_min(1).double()
    check = taylor_vs_ablation(model, inputs[:1], neurons=neurons, seed=0)
    negative = check.taylor < 0
    raised = int((check.true_change[negative] < 0).sum())
    answer = OpposingNeuronsAnswer(sparsity, opposing.cpu().numpy(), int(negative.sum()), raised)
    assert answer.opposing_kept.max() > 0, "no opposing neuron among the top scores"
    assert answer.raised > 0, "no removal of an opposing neuron raised the logit"
    return answer


def answer_inactive_neurons(model: nn.Module, image: Tensor) -> str:
    """Check: inactive neurons (``a = 0``) score exactly 0, and removing all of them at once
    leaves the logits exactly as they were (``0 * m = 0``). Returns a one-line summary."""
    x = image if image.ndim == 4 else image.unsqueeze(0)
    parts = taylor_parts(model, x)
    x = check_inputs(model, x)
    inactive = [a == 0 for a in parts.activations]
    zero_scores = all(bool((s[i] == 0).all()) for s, i in zip(parts.scores, inactive))
    with preserve_model_state(model), torch.no_grad(), apply_masks(model, [~i for i in inactive]):
        pruned = model(x)
    n_inactive = sum(int(i.sum()) for i in inactive)
    total = sum(i.numel() for i in inactive)
    assert zero_scores, "an inactive neuron has a non-zero score"
    assert torch.equal(pruned, parts.logits), "removing inactive neurons changed the logits"
    return (
        f"{n_inactive} of {total} neurons inactive ({n_inactive / total:.1%}); all score 0, and "
        f"removing all of them at once changes the logits by exactly "
        f"{(pruned - parts.logits).abs().max().item():g}"
    )


@dataclass
class LastSiteAnswer:
    """Exercise 3 of notebook 01: the estimate at the last site against all sites."""

    last: AblationCheck  # neurons of the last site only
    everywhere: AblationCheck  # neurons of every site
    last_error: float  # max |true - estimate| / max |estimate| at the last site
    everywhere_error: float  # the same over every site

    def __str__(self) -> str:
        return (
            f"last site ({self.last.names[0]}): largest error {self.last_error:.1e} of the "
            f"largest estimate, Spearman {self.last.spearman:.4f}\n"
            f"all sites: largest error {self.everywhere_error:.1e}, "
            f"Spearman {self.everywhere.spearman:.4f}"
        )


def answer_last_site(model: nn.Module, image: Tensor, neurons: int = 60) -> LastSiteAnswer:
    """Check: at the last ReLU site (followed only by average pooling and a linear layer) the
    logit is linear in each neuron, so the Taylor estimate is exact (to float rounding).

    Asserts an error below 1e-3 of the largest estimate there, and that it is smaller than over
    all sites.
    """
    x = image if image.ndim == 4 else image.unsqueeze(0)
    n_sites = len(taylor_parts(model, x).sites)
    last = taylor_vs_ablation(model, x, neurons=neurons, seed=0, site=n_sites - 1)
    every = taylor_vs_ablation(model, x, neurons=neurons, seed=0)

    def error(c: AblationCheck) -> float:
        return float(np.abs(c.true_change - c.taylor).max() / np.abs(c.taylor).max())

    answer = LastSiteAnswer(last, every, error(last), error(every))
    assert answer.last_error < 1e-3, f"the estimate is not exact at the last site: {answer}"
    assert answer.last_error < answer.everywhere_error
    return answer
