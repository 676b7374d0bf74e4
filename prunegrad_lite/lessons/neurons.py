"""Lesson 1, neuron importance: activations, their gradients and the Taylor score ``|a * dS_c/da|``.

:func:`taylor_parts` keeps the two factors of PruneGrad's step 1 apart (the package's
:func:`~prunegrad_lite.neuron_scores` returns only their product), so a learner can see that a
neuron matters when it is both active and influential. :func:`layer_score_stats` summarises the
scores layer by layer and :func:`top_channels` picks the channels whose neurons score highest.

Example
-------
>>> parts = taylor_parts(model, x[:4])                    # 4 images, predicted classes
>>> print(format_layer_stats(layer_score_stats(parts)))
>>> channels, maps = top_channels(parts.scores[3], sample=0, k=8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite, intercept_activations
from prunegrad_lite.attribution.pruning import apply_masks
from prunegrad_lite.attribution.base import (
    TargetLike,
    check_inputs,
    check_model,
    preserve_model_state,
    resolve_target,
    target_scores,
)

__all__ = [
    "AblationCheck",
    "LayerStats",
    "TaylorParts",
    "format_layer_stats",
    "layer_score_stats",
    "taylor_parts",
    "taylor_vs_ablation",
    "top_channels",
]


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
