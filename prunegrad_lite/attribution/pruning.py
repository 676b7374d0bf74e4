"""PruneGrad's steps, in order: neuron scores, input-specific pruning masks, the pruned network.

Step 1 (:func:`neuron_scores`) scores every neuron, i.e. every scalar output of every ReLU-family
activation call, for one target logit S_c: ``|a * dS_c/da|``, one forward and one backward pass
(``scoring="taylor"``, the method; the other scorings are variants, see
:mod:`~prunegrad_lite.attribution.variants`).

Step 2 (:func:`masks_from_scores`) prunes, for each sample separately, every neuron whose score is
``<= thr``, with ``thr`` the ``100 * sparsity`` percentile of that sample's scores (linear
interpolation, as numpy's default), over all sites at once (``"global"``, the default) or within
each site (``"layer"``). The percentile is exact: numpy's, ties included
(:mod:`~prunegrad_lite.attribution.percentile`).

Step 3 (:func:`apply_masks`) runs the model with the masks multiplied into the activations; the
gradient of the pruned network is then plain autograd (docs/method.md section 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import (
    ActivationSite,
    NoActivationError,
    intercept_activations,
    no_activation_error,
    straight_through_clip,
)
from prunegrad_lite.attribution.base import TargetLike, checked, resolve_target, target_scores
from prunegrad_lite.attribution.percentile import percentile_threshold
from prunegrad_lite.attribution.variants import integrated_scores, random_scores

__all__ = [
    "RULES",
    "SCORINGS",
    "THRESHOLDS",
    "NeuronScores",
    "PruningMasks",
    "apply_masks",
    "check_sparsity",
    "masks_from_scores",
    "neuron_scores",
    "rule_keys",
]

SCORINGS = ("taylor", "integrated_gradients", "random")
THRESHOLDS = ("global", "layer")
#: Step 2's rules: ``"spec"`` prunes ``score <= thr`` (the method); ``"keep_active"`` (our
#: extension for clipped activations, see :mod:`~prunegrad_lite.attribution.relu6`) never counts
#: an active neuron with score 0 at a ReLU6 site as unimportant. Identical on ReLU networks.
RULES = ("spec", "keep_active")

# --------------------------------------------------------------------------- step 1: scores


@dataclass
class NeuronScores:
    """Importance scores of every neuron, per activation site.

    ``scores[l]`` has shape ``(N, *sites[l].shape)``; ``logits`` (N, K) are the unpruned
    network's and ``target`` (N,) the explained classes.
    """

    sites: list[ActivationSite]
    scores: list[Tensor]
    logits: Tensor
    target: Tensor
    scoring: str
    # per site (N, *shape) activation values, kept by the Taylor scoring for the rule
    # "keep_active"; None for the other scorings
    activations: list[Tensor] | None = field(default=None, repr=False)

    def flat(self) -> Tensor:
        """All scores of each sample in one row, (N, M) with M the neurons per sample."""
        return torch.cat([s.flatten(1) for s in self.scores], dim=1)


def _lowest(nodes: Sequence[torch.autograd.graph.Node]) -> list[bool]:
    """For each node, whether none of the other ``nodes`` lies below it in the autograd graph.

    A walk down from the nodes, each graph node visited once: a node reaches one of ``nodes``
    when one of its inputs is one of them or reaches one.
    """
    targets = set(nodes)  # holds the node objects, so an object is never a new one meanwhile
    reaches: dict = {}

    def inputs(f) -> list:
        return [c for c, _ in f.next_functions if c is not None]

    for root in nodes:
        stack = [root]
        while stack:
            f = stack[-1]
            if f in reaches:
                stack.pop()
                continue
            below = inputs(f)
            if any(c in targets for c in below):
                reaches[f] = True
            elif pending := [c for c in below if c not in reaches]:
                stack.extend(pending)
                continue
            else:
                reaches[f] = any(reaches[c] for c in below)
            stack.pop()
    return [not reaches[n] for n in nodes]


def _taylor(
    model: nn.Module,
    inputs: Tensor,
    target: TargetLike,
    straight_through: bool = False,
    activations: str = "all",
    names: bool = True,
) -> NeuronScores:
    """``|a * dS/da|`` for every neuron: one forward and one backward pass.

    The backward pass stops at the lowest activation sites: nothing below them (the stem's
    convolution, the input) needs a gradient. A hook on the node that made each higher ``a``
    turns its gradient into the score once that node has run, so the gradients are never all
    held at once; the lowest sites' gradients are what the pass returns. When ``a`` is not
    kept (``activations="relu6"`` keeps only the ReLU6 sites', all ``rule="keep_active"``
    reads), the score is written into ``a``'s own memory: step 1 then holds what a plain
    gradient does.
    """
    outs: list[Tensor] = []
    keeps: list[bool] = []

    def record(site: ActivationSite, out: Tensor) -> Tensor:
        outs.append(out)
        keeps.append(activations == "all" or site.kind == "relu6")
        return out

    scores: list[Tensor | None] = []  # per site; None: not in the graph, its score stays 0

    def score(i: int, g: Tensor) -> None:  # g: dS/da, summed over every use of a
        a = outs[i].detach()
        scores[i] = (g * a).abs() if keeps[i] else a.mul_(g).abs_()

    clip = straight_through_clip() if straight_through else contextlib.nullcontext()
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(True)  # so every activation is in the graph
        with clip, intercept_activations(model, record, names=names) as sites:
            logits = model(x)  # (N, K)
        if not sites:
            raise no_activation_error(model)
        acts = [o.detach() if k else None for o, k in zip(outs, keeps)]
        t = resolve_target(target, logits, x.shape[0])
        scores.extend([None] * len(outs))
        in_graph = [i for i, o in enumerate(outs) if o.grad_fn is not None]
        lowest = _lowest([outs[i].grad_fn for i in in_graph])
        for i, low in zip(in_graph, lowest):
            if not low:  # its node runs in the backward pass: the hook scores it there

                def to_score(grad_inputs, grad_outputs, _i=i) -> None:
                    if grad_outputs[0] is not None:
                        score(_i, grad_outputs[0])

                outs[i].grad_fn.register_hook(to_score)
        low_sites = [i for i, low in zip(in_graph, lowest) if low]
        target_sum = target_scores(logits, t).sum()
        if low_sites and target_sum.requires_grad:
            grads = torch.autograd.grad(target_sum, [outs[i] for i in low_sites], allow_unused=True)
            for i, g in zip(low_sites, grads):
                if g is not None:
                    score(i, g)
        outs.clear()
    scores = [
        torch.zeros((inputs.shape[0], *site.shape), dtype=inputs.dtype, device=inputs.device)
        if s is None
        else s
        for s, site in zip(scores, sites)
    ]
    return NeuronScores(list(sites), scores, logits.detach(), t, "taylor", acts)


def _sites_and_logits(
    model: nn.Module, inputs: Tensor, names: bool = True
) -> tuple[list[ActivationSite], Tensor]:
    with torch.no_grad(), intercept_activations(model, names=names) as sites:
        logits = model(inputs)
    if not sites:
        raise no_activation_error(model)
    return list(sites), logits


def neuron_scores(
    model: nn.Module,
    inputs: Tensor,
    target: TargetLike = None,
    scoring: str = "taylor",
    *,
    generator: torch.Generator | None = None,
    alphas: int = 11,
    internal_batch_size: int | None = None,
    straight_through: bool = False,
    activations: str = "all",
    names: bool = True,
) -> NeuronScores:
    """Step 1: importance score of every neuron of every activation site, per sample.

    ``target=None`` explains the class the unpruned network predicts. ``scoring`` is
    ``"taylor"`` (``|a * dS/da|``, one forward and one backward pass), ``"integrated_gradients"``
    (PruneInt, ``alphas`` points from 0 to 1, one pass per site) or ``"random"`` (uniform scores
    from ``generator``: the random-pruning control). ``straight_through=True`` (Taylor only)
    takes ``dS/da`` with ReLU's gradient through every ReLU6 clip (our extension, see
    :mod:`~prunegrad_lite.attribution.relu6`; no effect on ReLU networks). Inputs are checked like
    :meth:`PruneGrad.attribute` and moved to the model's device; the model is left unchanged.
    ``activations`` (Taylor): ``"all"`` keeps every site's activations in the result,
    ``"relu6"`` only the ReLU6 sites' (all ``rule="keep_active"`` reads; less memory).
    ``names=False`` calls the sites ``site0``, ``site1``, ... instead of their module paths,
    which saves a hook on every module (what :func:`~prunegrad_lite.prunegrad` does).

    Example
    -------
    >>> s = neuron_scores(model, x)
    >>> [(site.name, sc.shape) for site, sc in zip(s.sites, s.scores)]
    """
    if activations not in ("all", "relu6"):
        raise ValueError(f"activations must be 'all' or 'relu6', got {activations!r}")
    with checked(model, inputs) as x:
        if straight_through and scoring != "taylor":
            raise ValueError(f"straight_through applies to the 'taylor' scoring, not {scoring!r}")
        if scoring == "taylor":
            return _taylor(model, x, target, straight_through, activations, names)
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        if scoring == "integrated_gradients" and alphas < 2:
            raise ValueError(f"alphas must be >= 2 (0 and 1 included), got {alphas}")
        sites, logits = _sites_and_logits(model, x, names)
        if scoring == "random":
            scores = random_scores(sites, x, generator)
            return NeuronScores(sites, scores, logits, resolve_target(target, logits), "random")
        t = resolve_target(target, logits)
        scores = integrated_scores(model, x, t, sites, alphas, internal_batch_size)
        return NeuronScores(sites, scores, logits, t, "integrated_gradients")


# ---------------------------------------------------------------------------- step 2: masks


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` as a float after checking it lies in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"sparsity must be a number in [0, 1), got {type(sparsity).__name__}")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(
            f"sparsity must be in [0, 1) (the fraction of neurons pruned), got {sparsity}; "
            "e.g. 0.9 prunes 90% of the neurons"
        )
    return float(sparsity)


@dataclass
class PruningMasks:
    """Boolean keep-masks per activation site (True = kept), fixed for one batch of inputs.

    ``masks[l]`` has shape ``(N, *site.shape)``; ``thresholds`` is (N,) for the global threshold
    and (N, L) for per-layer thresholds.
    """

    masks: list[Tensor]
    thresholds: Tensor
    sparsity: float
    threshold: str

    @property
    def kept_per_site(self) -> Tensor:
        """Fraction of each site's neurons kept, per sample: (N, L)."""
        return torch.stack([m.flatten(1).double().mean(1) for m in self.masks], dim=1)

    @property
    def kept_fraction(self) -> Tensor:
        """Fraction of all neurons kept, per sample (N,): the *effective* 1 - sparsity."""
        kept = sum(m.flatten(1).sum(1) for m in self.masks)
        total = sum(m[0].numel() for m in self.masks)
        return kept.double() / total

    @classmethod
    def keep_all(
        cls, sites: Sequence[ActivationSite], n: int, device: torch.device
    ) -> PruningMasks:
        """Masks that keep every neuron (the unpruned network)."""
        masks = [torch.ones((n, *s.shape), dtype=torch.bool, device=device) for s in sites]
        return cls(masks, torch.full((n,), float("-inf"), dtype=torch.float64), 0.0, "global")


def _keep(scores: Tensor, thr: Tensor) -> Tensor:
    """``scores > thr`` per sample, compared in the scores' dtype (exactly as in float64).

    ``thr`` (N,) float64 is rounded down to the scores' dtype: for a float32 score s,
    ``s > thr`` holds exactly when ``s > largest float32 <= thr``.
    """
    if scores.device.type == "cpu" and scores.dtype != torch.bfloat16:
        # NumPy on the CPU, the rounding included: ~3x faster than torch's broadcast
        # comparison (1.0 ms vs 2.7 ms for the shipped model's 64 x 56,448 scores on one
        # thread, 0.9 ms vs 1.4 ms on two), and no torch call per site for the threshold
        s, t64 = scores.detach().numpy(), thr.cpu().numpy()
        t = t64.astype(s.dtype)
        t = np.where(t > t64, np.nextafter(t, s.dtype.type(-np.inf)), t)
        return torch.from_numpy(np.greater(s, t.reshape(-1, *([1] * (s.ndim - 1)))))
    t = thr.to(device=scores.device, dtype=scores.dtype)
    t = torch.where(
        t.double() > thr.to(scores.device), torch.nextafter(t, torch.full_like(t, -float("inf"))), t
    )
    return scores > t.view(-1, *([1] * (scores.ndim - 1)))


def masks_from_scores(
    scores: NeuronScores | Sequence[Tensor],
    sparsity: float,
    threshold: str = "global",
    rule: str = "spec",
) -> PruningMasks:
    """Step 2: keep the neurons with ``score > percentile(scores, 100 * sparsity)``, per sample.

    ``threshold="global"`` uses one percentile over all sites of a sample (the method's default);
    ``"layer"`` one percentile within each site. ``sparsity = 0`` keeps every neuron, so the
    pruned network is the original one and PruneGrad is the plain gradient.
    ``rule="keep_active"`` (needs Taylor ``NeuronScores``, which carry the activations) ranks,
    at ReLU6 sites only, every active neuron with score 0 above all scored neurons (ordered by
    activation), so it is pruned last; see :func:`rule_keys`. ``"spec"``: the method's rule.

    Example
    -------
    >>> s = neuron_scores(model, x)
    >>> pm = masks_from_scores(s, 0.9)
    >>> pm.kept_fraction          # ~0.1 per sample (less when many scores tie)
    """
    sparsity = check_sparsity(sparsity)
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "keep_active":
        score_list = rule_keys(scores)
    else:
        score_list = list(scores.scores if isinstance(scores, NeuronScores) else scores)
    if not score_list:
        raise NoActivationError("no activation sites, so there is nothing to prune")
    n = score_list[0].shape[0]
    if sparsity == 0.0:
        masks = [torch.ones_like(s, dtype=torch.bool) for s in score_list]
        thr = torch.full((n,) if threshold == "global" else (n, len(score_list)), float("-inf"))
        return PruningMasks(masks, thr.double(), 0.0, threshold)
    if threshold == "global":
        thr = percentile_threshold(score_list, sparsity)  # (N,) over all sites at once
        masks = [_keep(s, thr) for s in score_list]
        return PruningMasks(masks, thr.cpu(), sparsity, threshold)
    thrs, masks = [], []
    for s in score_list:  # a loop over layers; every sample of the batch at once
        t = percentile_threshold(s.flatten(1), sparsity)
        thrs.append(t)
        masks.append(_keep(s, t))
    return PruningMasks(masks, torch.stack(thrs, dim=1).cpu(), sparsity, threshold)


def rule_keys(scores: NeuronScores) -> list[Tensor]:
    """The ranking keys of ``rule="keep_active"``: the scores, except at ReLU6 sites.

    There an active neuron (``a > 0``) whose score is exactly 0 gets the key
    ``top + a``, with ``top`` the sample's largest score plus 1: above every scored neuron, so
    the threshold reaches it last, and among such neurons the larger activation is kept longer.
    Inactive neurons keep their score 0 (pruning them is exact). Sites of another kind, and
    models without a ReLU6 site, get their scores back unchanged (the same tensors).
    """
    if not isinstance(scores, NeuronScores) or scores.activations is None:
        raise ValueError(
            'rule="keep_active" needs the activations: pass the NeuronScores of the "taylor" '
            "scoring (neuron_scores(model, x)), not a list of tensors or another scoring"
        )
    clipped = [site.kind == "relu6" for site in scores.sites]
    if not any(clipped):
        return list(scores.scores)
    n = scores.scores[0].shape[0]
    top = torch.stack([s.flatten(1).amax(1) for s in scores.scores], 1).amax(1) + 1.0  # (N,)
    keys = []
    for s, a, is_clipped in zip(scores.scores, scores.activations, clipped):
        if not is_clipped:
            keys.append(s)
            continue
        protect = (s == 0) & (a > 0)
        keys.append(torch.where(protect, top.view(n, *([1] * (s.ndim - 1))) + a, s))
    return keys


# --------------------------------------------------------------- step 3: the pruned network


@contextlib.contextmanager
def apply_masks(model: nn.Module, masks: PruningMasks | Sequence[Tensor]) -> Iterator[None]:
    """Run ``model`` inside the block as the pruned network: activation ``l`` becomes ``a * m_l``.

    The masks are constants (no gradient flows into them). A batch that is a multiple of the
    masks' batch, laid out ``index = k * N + n`` (IG path points, noisy copies), reuses sample
    ``n``'s masks. Raises a ``ValueError`` when the model calls more activations than there are
    masks or a site's shape differs (a model whose control flow depends on the input).

    Example
    -------
    >>> with apply_masks(model, masks_from_scores(neuron_scores(model, x), 0.9)):
    ...     pruned_logits = model(x)
    """
    mask_list = list(masks.masks if isinstance(masks, PruningMasks) else masks)
    binary = all(m.dtype == torch.bool for m in mask_list)
    # a float times a bool tensor runs a slow casting loop (~15x a float product on CPU); the
    # same bytes viewed as uint8 take the fast path, and the product is the same 0/1 masking
    mask_list = [m.view(torch.uint8) if m.dtype == torch.bool else m for m in mask_list]

    def mask_of(site: ActivationSite, shape: torch.Size) -> Tensor:
        if site.index >= len(mask_list):
            raise ValueError(
                f"the model called a ReLU-family activation more often ({site.index + 1}) than "
                f"there are masks ({len(mask_list)}): were the masks computed for this model?"
            )
        m = mask_list[site.index]
        if shape[1:] != m.shape[1:] or shape[0] % m.shape[0] != 0:
            raise ValueError(
                f"activation {site.index} has shape {tuple(shape)} but its mask has "
                f"{tuple(m.shape)}: masks must come from the same model and input size"
            )
        return m

    def handler(site: ActivationSite, out: Tensor) -> Tensor:  # masks that are not 0/1 bytes
        m = mask_of(site, out.shape)
        if out.shape[0] == m.shape[0]:
            return out * m
        return (out.view(-1, *m.shape) * m).view(out.shape)

    if binary:
        handler.mask_of = mask_of  # type: ignore[attr-defined]  # fused: see masked_activation

    with intercept_activations(model, handler, names=False):
        yield
