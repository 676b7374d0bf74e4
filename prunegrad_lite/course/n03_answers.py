"""Notebook 03's exercises: each answer computed and asserted (CI runs the notebook).

Used by ``notebooks/03_prunegrad.ipynb`` (its solution cells); the lesson's own computations are
in :mod:`.n03_prunegrad` and :mod:`.n03_perturbation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.base import check_inputs
from prunegrad_lite.attribution.pruning import neuron_scores
from prunegrad_lite.course.n03_perturbation import PerturbationGains, perturbation_gains

__all__ = [
    "DeadFractionAnswer",
    "SecondClassAnswer",
    "answer_circular_test",
    "answer_dead_fraction",
    "answer_second_class",
]


@dataclass
class DeadFractionAnswer:
    """Exercise 1 of notebook 03: PruneGrad below the zero-score fraction is the plain gradient."""

    zero_fraction: np.ndarray  # (N,) fraction of each image's neurons with score exactly 0
    sparsity: float  # the sparsity tried, below every image's zero fraction
    max_difference: float  # max |PruneGrad - gradient| over the maps
    above_sparsity: float  # a sparsity above every zero fraction
    above_difference: float  # max |PruneGrad - gradient| there (> 0)

    def __str__(self) -> str:
        return (
            f"zero-score fraction per image: {np.round(self.zero_fraction, 3).tolist()}\n"
            f"sparsity {self.sparsity:.2f} (below all of them): max |PruneGrad - gradient| = "
            f"{self.max_difference:.2e}\nsparsity {self.above_sparsity:.2f} (above all of them): "
            f"max |PruneGrad - gradient| = {self.above_difference:.2e}"
        )


def answer_dead_fraction(model: nn.Module, inputs: Tensor) -> DeadFractionAnswer:
    """Check: on a ReLU network PruneGrad equals the gradient while the threshold is 0.

    While ``sparsity`` is below an image's fraction of zero-score neurons its threshold is 0,
    and only neurons with score 0 are pruned. Inactive ones (``a = 0``) change nothing, and an
    active neuron with ``dS/da = 0`` feeds only units that are off for this input, which stay
    off. So the pruned network computes the same function around ``x`` and the map is the
    plain gradient. Asserts it (to float rounding) and that a sparsity above every zero
    fraction changes the map.
    """
    from prunegrad_lite.attribution.gradients import Gradient
    from prunegrad_lite.attribution.prunegrad import PruneGrad

    scores = neuron_scores(model, inputs).flat()  # (N, M)
    zero = (scores == 0).double().mean(1).cpu().numpy()
    below = float(np.floor(zero.min() * 0.9 * 100) / 100)
    above = float(min(0.99, np.ceil((zero.max() + 0.05) * 100) / 100))
    grad = Gradient(model).attribute(inputs)
    diff = (PruneGrad(model, sparsity=below).attribute(inputs) - grad).abs().max().item()
    diff_above = (PruneGrad(model, sparsity=above).attribute(inputs) - grad).abs().max().item()
    scale = grad.abs().max().item()
    assert diff <= 1e-5 * scale, f"PruneGrad differs from the gradient at sparsity {below}: {diff}"
    assert diff_above > 1e-3 * scale, "above the zero fraction the map should change"
    return DeadFractionAnswer(zero, below, diff, above, diff_above)


@dataclass
class SecondClassAnswer:
    """Exercise 2 of notebook 03: explaining the second most likely class instead of the first."""

    classes: np.ndarray  # (N, 2) the first and second most likely class per image
    kept_overlap: np.ndarray  # (N,) |kept_1 & kept_2| / |kept_1 | kept_2| (Jaccard)
    cosine_prunegrad: np.ndarray  # (N,) cosine similarity of the two classes' PruneGrad maps
    cosine_gradient: np.ndarray  # (N,) the same for the plain gradient

    def __str__(self) -> str:
        r = lambda a: np.round(a, 3).tolist()  # noqa: E731
        return (
            f"kept neurons shared by the two classes (Jaccard): {r(self.kept_overlap)}\n"
            f"cosine(map of class 1, map of class 2), PruneGrad: {r(self.cosine_prunegrad)}\n"
            f"cosine(map of class 1, map of class 2), gradient:  {r(self.cosine_gradient)}"
        )


def _cosine(a: Tensor, b: Tensor) -> np.ndarray:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return torch.nn.functional.cosine_similarity(a, b, dim=1).cpu().numpy()


def answer_second_class(model: nn.Module, inputs: Tensor, sparsity: float) -> SecondClassAnswer:
    """Check: the masks, and so the map, depend on the explained class.

    Explains the most and the second most likely class of each image. Asserts that the kept
    neurons differ (Jaccard overlap < 1) and the PruneGrad maps differ (cosine < 1) for every
    image; how much they differ, and whether more than the gradient's, is printed, not asserted.
    """
    from prunegrad_lite.attribution.gradients import Gradient
    from prunegrad_lite.attribution.prunegrad import PruneGrad

    with torch.no_grad():
        top2 = model(check_inputs(model, inputs)).topk(2, dim=1).indices  # (N, 2)
    pg = PruneGrad(model, sparsity=sparsity)
    ex = [pg.explain(inputs, top2[:, j], return_masks=True) for j in range(2)]
    m1 = torch.cat([m.flatten(1) for m in ex[0].masks], 1)
    m2 = torch.cat([m.flatten(1) for m in ex[1].masks], 1)
    jaccard = ((m1 & m2).sum(1).double() / (m1 | m2).sum(1).clamp_min(1).double()).cpu().numpy()
    grads = [Gradient(model).attribute(inputs, top2[:, j]) for j in range(2)]
    answer = SecondClassAnswer(
        classes=top2.cpu().numpy(),
        kept_overlap=jaccard,
        cosine_prunegrad=_cosine(ex[0].attribution, ex[1].attribution),
        cosine_gradient=_cosine(*grads),
    )
    assert (answer.kept_overlap < 1).all(), "the two classes kept the same neurons"
    assert (answer.cosine_prunegrad < 1 - 1e-6).all(), "the two classes' maps are the same"
    return answer


def answer_circular_test(
    model: nn.Module, inputs: Tensor, sparsity: float, epsilon: float = 1e-2
) -> PerturbationGains:
    """Check: at a small epsilon each network's own gradient is its best direction.

    In the pruned network PruneGrad's direction raises the logit at least as much as the plain
    gradient's (its own gradient); in the unpruned network the plain gradient's direction wins.
    First order, so on average over the images at a small ``epsilon``. Returns the gains.
    """
    g = perturbation_gains(model, inputs, sparsity, [epsilon], steps=1)
    pruned, unpruned = g.gains, g.unpruned
    tol = 1e-6 * epsilon
    assert pruned["prunegrad"].mean() >= pruned["gradient"].mean() - tol, "pruned network"
    assert unpruned["gradient"].mean() >= unpruned["prunegrad"].mean() - tol, "unpruned network"
    return g
