"""Lesson 2, input-specific pruning: what survives the threshold, what pruning does to the output.

:func:`pruning_sweep` scores the neurons once and then, for each sparsity, builds the masks
(PruneGrad's step 2) and runs the pruned network: the kept fraction per layer, the target
probability before and after, and whether the prediction survives. Run it with
``scoring="random"`` for the control that prunes as many neurons chosen at random.

Example
-------
>>> taylor = pruning_sweep(model, x, [0.5, 0.9, 0.99])
>>> random = pruning_sweep(model, x, [0.5, 0.9, 0.99], scoring="random")
>>> taylor.mean_change, random.mean_change        # (S,) each: Taylor pruning changes far less
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite
from prunegrad_lite.attribution.base import TargetLike, check_inputs, check_model
from prunegrad_lite.attribution.base import preserve_model_state
from prunegrad_lite.attribution.prunegrad import check_clip_treatment, clip_treatment_options
from prunegrad_lite.attribution.pruning import (
    apply_masks,
    check_sparsity,
    compute_scores,
    masks_from_scores,
)

__all__ = ["PruningSweep", "format_pruning_sweeps", "pruning_sweep"]


@dataclass
class PruningSweep:
    """What pruning keeps and does to the output at each sparsity; S levels, N samples, L sites."""

    sparsities: np.ndarray  # (S,) fractions of neurons pruned
    scoring: str  # "taylor" (PruneGrad), "random" (control) or "integrated_gradients"
    threshold: str  # "global" or "layer"
    clip_treatment: str  # what was done about ReLU6's clip (PruneGrad's option; "spec" for random)
    sites: list[ActivationSite]
    kept_fraction: np.ndarray  # (S, N) fraction of all neurons kept: the effective 1 - sparsity
    kept_per_site: np.ndarray  # (S, N, L) fraction of each site's neurons kept
    prob: np.ndarray  # (N,) target probability of the unpruned network
    pruned_prob: np.ndarray  # (S, N) target probability of the pruned network
    same_prediction: np.ndarray  # (S, N) bool: does the pruned network still predict the target?

    @property
    def change(self) -> np.ndarray:
        """Relative change of the target probability, ``|p - p'| / p``, (S, N)."""
        return np.abs(self.prob - self.pruned_prob) / np.maximum(self.prob, 1e-12)

    @property
    def mean_change(self) -> np.ndarray:
        """:attr:`change` averaged over the samples, (S,): what ``calibrate_sparsity`` targets."""
        return self.change.mean(axis=1)


def pruning_sweep(
    model: nn.Module,
    inputs: Tensor,
    sparsities: Sequence[float],
    target: TargetLike = None,
    *,
    scoring: str = "taylor",
    threshold: str = "global",
    seed: int = 0,
    clip_treatment: str = "auto",
) -> PruningSweep:
    """Prune at each sparsity and record kept fractions and target probabilities.

    Scores are computed once (``scoring`` as :func:`~prunegrad_lite.neuron_scores`; ``seed``
    seeds the random scoring), then one masked forward pass per sparsity. ``target=None``
    explains the predicted class. ``clip_treatment`` as :class:`~prunegrad_lite.PruneGrad`
    (ReLU6 networks only; ``"spec"`` is the method as published). The model is left unchanged.

    Example
    -------
    >>> sweep = pruning_sweep(model, x, [0.0, 0.7, 0.9])
    >>> sweep.kept_fraction.mean(1)       # about 1.0, 0.3, 0.1 (less when scores tie)
    """
    levels = [check_sparsity(s) for s in sparsities]
    check_model(model)
    x = check_inputs(model, inputs)
    with preserve_model_state(model):
        gen = torch.Generator().manual_seed(seed)
        treatment = check_clip_treatment(clip_treatment, scoring)
        rule, st = clip_treatment_options(treatment, scoring)
        scores = compute_scores(model, x, target, scoring, generator=gen, straight_through=st)
        t = scores.target.view(-1, 1)  # (N, 1)
        prob = scores.logits.softmax(-1).gather(1, t).squeeze(1)  # (N,)
        kept, kept_sites, pruned, same = [], [], [], []
        for s in levels:  # one masked forward pass per sparsity, all samples at once
            masks = masks_from_scores(scores, s, threshold, rule)
            with torch.no_grad(), apply_masks(model, masks):
                logits = model(x)  # (N, K)
            kept.append(masks.kept_fraction.cpu())
            kept_sites.append(masks.kept_per_site.cpu())
            pruned.append(logits.softmax(-1).gather(1, t).squeeze(1).cpu())
            same.append((logits.argmax(1) == scores.target).cpu())
    return PruningSweep(
        sparsities=np.asarray(levels, dtype=np.float64),
        scoring=scoring,
        threshold=threshold,
        clip_treatment=treatment,
        sites=scores.sites,
        kept_fraction=torch.stack(kept).numpy(),
        kept_per_site=torch.stack(kept_sites).numpy(),
        prob=prob.cpu().double().numpy(),
        pruned_prob=torch.stack(pruned).double().numpy(),
        same_prediction=torch.stack(same).numpy(),
    )


def format_pruning_sweeps(sweeps: Sequence[PruningSweep]) -> str:
    """A plain-text table: per sparsity, each sweep's kept fraction, mean change, same prediction.

    ``kept``: fraction of all neurons kept; ``|dp|/p``: mean relative change of the target
    probability; ``same``: fraction of images whose pruned network predicts the same class.

    Example
    -------
    >>> print(format_pruning_sweeps([taylor, random]))
    """

    def label(s: PruningSweep) -> str:  # the clip treatment only when not the default
        default = check_clip_treatment("auto", s.scoring)
        extra = "" if s.clip_treatment == default else f", {s.clip_treatment}"
        return f"{s.scoring}, {s.threshold}{extra}"[:25]

    head = f"{'':>8}" + "".join(f" | {label(s):^25}" for s in sweeps)
    sub = f"{'sparsity':>8}" + f" | {'kept':>8} {'|dp|/p':>9} {'same':>6}" * len(sweeps)
    rows = [head, sub]
    for i, s in enumerate(sweeps[0].sparsities):
        cells = [
            f" | {w.kept_fraction[i].mean():>8.1%} {w.mean_change[i]:>9.3f} "
            f"{w.same_prediction[i].mean():>6.0%}"
            for w in sweeps
        ]
        rows.append(f"{s:>8.2f}" + "".join(cells))
    return "\n".join(rows)
