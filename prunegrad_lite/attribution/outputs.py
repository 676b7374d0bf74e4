"""What the network's output says about the target class: its probability and how it changed.

Used wherever pruning or perturbing is measured by the target's softmax probability: the
explanation's ``prob_change``, the calibration of the sparsity (docs/method.md section 1,
"Sparsity"), the ReLU6 diagnosis, the lessons and the pixel-perturbation benchmark.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["relative_change", "target_probability"]


def target_probability(logits: Tensor, target: Tensor) -> Tensor:
    """Softmax probability of each sample's target class: ``softmax(logits)[n, target[n]]`` (N,).

    ``logits`` (N, K), ``target`` (N,) long, on the logits' device.

    Example
    -------
    >>> target_probability(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
    tensor([0.5000])
    """
    return logits.softmax(-1).gather(1, target.view(-1, 1)).squeeze(1)


def relative_change(new: Tensor, old: Tensor) -> Tensor:
    """``|new - old| / old`` elementwise, with ``old`` floored at 1e-12 (no division by zero).

    The measure of every pruning and perturbation experiment here: with probabilities,
    ``|p - p'| / p``, the fractional change of the target's probability.

    Example
    -------
    >>> relative_change(torch.tensor([0.6]), torch.tensor([0.8]))
    tensor([0.2500])
    """
    return (new - old).abs() / old.clamp_min(1e-12)
