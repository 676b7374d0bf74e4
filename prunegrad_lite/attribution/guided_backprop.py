"""Guided Backpropagation (Springenberg et al. 2015), for every ReLU-family call.

At every ReLU the backward pass lets a gradient through only where the forward input was
active (the ordinary ReLU rule) *and* the gradient arriving from above is positive (the
"guided" rule)::

    dS/dx_i  =  [x_i > 0] * max(dS/dy_i, 0)            # ReLU
    dS/dx_i  =  [0 < x_i < 6] * max(dS/dy_i, 0)        # ReLU6

The activation calls are caught with :func:`intercept_activations`, so the rule reaches
reused ``nn.ReLU`` modules, in-place ReLU, ``F.relu``/``torch.relu``/``Tensor.relu`` and ReLU6
alike. Captum's ``GuidedBackprop`` overrides only ``nn.ReLU`` *modules* and silently computes
the plain gradient through a functional ReLU (``tests/test_baselines.py`` shows the difference).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite, intercept_activations
from prunegrad_lite.attribution.base import (
    Attribution,
    TargetLike,
    resolve_target,
    target_scores,
)

__all__ = ["GuidedBackprop", "guided_backprop"]


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward keeps only the positive part of the incoming gradient.

    Placed right after an activation's output, so the activation's own backward (ReLU:
    ``x > 0``, ReLU6: ``0 < x < 6``) then applies the forward mask: together, the guided rule.
    """

    @staticmethod
    def forward(ctx, out: Tensor) -> Tensor:  # type: ignore[override]
        return out.clone()  # a copy, so later in-place ops on it are ordinary autograd

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad.clamp(min=0)


def _guide(site: ActivationSite, out: Tensor) -> Tensor:
    return _PositiveGradient.apply(out)


def guided_backprop(model: nn.Module, inputs: Tensor, target: TargetLike) -> Tensor:
    """Guided-backprop gradient of ``S_target`` with respect to ``inputs`` (N, ...), signed.

    ``target`` (None: the predicted class) is resolved on this pass's logits, which guiding
    leaves unchanged (it alters the backward pass only); the model's parameters get no ``.grad``.
    """
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(True)
        with intercept_activations(model, _guide, names=False):
            logits = model(x)  # (N, K)
        target = resolve_target(target, logits, x.shape[0])
        (grad,) = torch.autograd.grad(target_scores(logits, target).sum(), x)
    return grad


class GuidedBackprop(Attribution):
    """Guided Backpropagation: the input gradient with negative gradients stopped at every ReLU.

    Defaults: the map is **signed** (no absolute value, no x-multiplication) and of the
    pre-softmax logit. Every ReLU-family call is guided: ``nn.ReLU`` (reused or in-place),
    ``F.relu``, ``torch.relu``, ``Tensor.relu`` and ReLU6 (also blocked where ``x >= 6``).
    Known to depend little on the upper layers' weights (it fails the sanity checks).

    Example
    -------
    >>> gb = GuidedBackprop(model)
    >>> maps = gb.attribute(x)            # (N, C, H, W), signed
    >>> maps = gb.attribute(x, target=3)
    """

    name = "guided_backprop"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        return guided_backprop(self.model, inputs, target)  # one pass: no separate prediction
