"""The gradient family: Gradient, Gradient x Input, Integrated Gradients and SmoothGrad.

These are plain autograd, written out here (not taken from Captum) because PruneGrad runs them
*inside the pruned network*: the functions take whatever ``model`` they are given, so inside
:func:`prunegrad_lite.apply_masks` they explain the pruned network. Expanded batches (IG's path
points, SmoothGrad's noisy copies) are laid out step-major, ``index = step * N + sample``, which
is the layout the masks broadcast over. Captum is the oracle in the tests.

Defaults (the libraries disagree; ours are docs/method.md section 2):

* Gradient: **signed** ``dS_c/dx`` (Captum's ``Saliency`` defaults to ``abs=True``).
* Integrated Gradients: zero baseline in normalised space, 50 steps, midpoint Riemann sum
  (alphas ``(k + 0.5) / steps``; Captum's default is Gauss-Legendre).
* SmoothGrad: 25 noisy samples, Gaussian noise of std ``0.15 * (max(x) - min(x))`` per sample
  (Smilkov et al.'s noise level), the mean of the signed gradients (``squared=True``: of squares).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.base import Attribution, TargetLike, input_gradient

__all__ = [
    "Gradient",
    "GradientXInput",
    "IntegratedGradients",
    "SmoothGrad",
    "grad_x_input",
    "gradient",
    "integrated_gradients",
    "smoothgrad",
]

DEFAULT_INTERNAL_BATCH = 64  # samples per forward pass in expanded batches (IG steps, noise)


def gradient(model: nn.Module, inputs: Tensor, target: TargetLike) -> Tensor:
    """Signed input gradient ``dS_c/dx`` (N, ...): one forward and one backward pass (the
    target, None for the predicted class, is read off that same forward)."""
    return input_gradient(model, inputs, target)[0]


def grad_x_input(model: nn.Module, inputs: Tensor, target: TargetLike) -> Tensor:
    """Gradient times input, ``x * dS_c/dx`` (N, ...)."""
    return inputs * gradient(model, inputs, target)


def _expanded_mean_gradient(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    points: Tensor,
    weights: Tensor,
    internal_batch_size: int | None,
    square: bool = False,
) -> Tensor:
    """Weighted sum over k of ``dS/dx`` (squared if ``square``) at ``points[k]``.

    points (K, N, ...), weights (K,); the K*N samples run ``internal_batch_size`` at a time.
    """
    k, n = points.shape[0], points.shape[1]
    per_chunk = max(1, (internal_batch_size or DEFAULT_INTERNAL_BATCH) // n)
    total = torch.zeros_like(inputs)
    for start in range(0, k, per_chunk):  # loop over chunks of path points, not over samples
        chunk = points[start : start + per_chunk]  # (k', N, ...)
        grads, _ = input_gradient(
            model, chunk.reshape(-1, *inputs.shape[1:]), target.repeat(chunk.shape[0])
        )
        grads = grads.view_as(chunk)
        w = weights[start : start + per_chunk].view(-1, *([1] * inputs.ndim))
        total += ((grads.square() if square else grads) * w).sum(0)
    return total


def integrated_gradients(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    *,
    steps: int = 50,
    baseline: Tensor | float = 0.0,
    internal_batch_size: int | None = None,
) -> Tensor:
    """Integrated Gradients ``(x - x0) * mean_k dS/dx(x0 + alpha_k (x - x0))`` (N, ...).

    ``baseline`` x0 defaults to zero in normalised space (the dataset mean); alphas are the
    midpoints ``(k + 0.5) / steps``, so ``sum(IG) ~ S(x) - S(x0)`` (completeness) to O(1/steps^2).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    base = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device).expand_as(inputs)
    alphas = (torch.arange(steps, dtype=inputs.dtype, device=inputs.device) + 0.5) / steps
    shape = (-1,) + (1,) * inputs.ndim
    points = base + alphas.view(shape) * (inputs - base)  # (steps, N, ...)
    weights = torch.full((steps,), 1.0 / steps, dtype=inputs.dtype, device=inputs.device)
    mean_grad = _expanded_mean_gradient(model, inputs, target, points, weights, internal_batch_size)
    return (inputs - base) * mean_grad


def smoothgrad(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    *,
    samples: int = 25,
    noise_level: float = 0.15,
    squared: bool = False,
    generator: torch.Generator | None = None,
    internal_batch_size: int | None = None,
) -> Tensor:
    """SmoothGrad: mean gradient over noisy copies ``x + eps``, ``eps ~ N(0, sigma^2)`` (N, ...).

    ``sigma = noise_level * (max(x_n) - min(x_n))`` per sample. The noise is drawn on the
    generator's device (CPU by default) and moved, so a seed gives the same maps on CPU and GPU.
    ``squared=True`` averages squared gradients (SmoothGrad-Squared, non-negative).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    flat = inputs.flatten(1)
    sigma = noise_level * (flat.max(1).values - flat.min(1).values)  # (N,)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    eps = torch.randn((samples, *inputs.shape), generator=generator, device=gen_device)
    eps = eps.to(device=inputs.device, dtype=inputs.dtype) * sigma.view(
        1, -1, *([1] * (inputs.ndim - 1))
    )
    points = inputs.unsqueeze(0) + eps  # (samples, N, ...)
    weights = torch.full((samples,), 1.0 / samples, dtype=inputs.dtype, device=inputs.device)
    return _expanded_mean_gradient(
        model, inputs, target, points, weights, internal_batch_size, square=squared
    )


class Gradient(Attribution):
    """Signed input gradient ``dS_c/dx`` (Simonyan et al. 2014). Not Captum's ``abs=True``.

    Example
    -------
    >>> maps = Gradient(model).attribute(x)          # (N, C, H, W), signed
    >>> maps = Gradient(model).attribute(x, target=3)
    """

    name = "gradient"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        return gradient(self.model, inputs, target)  # one pass: no separate prediction


class GradientXInput(Attribution):
    """Gradient times input ``x * dS_c/dx`` (Shrikumar et al. 2016), in normalised input space.

    Example
    -------
    >>> maps = GradientXInput(model).attribute(x)
    """

    name = "grad_x_input"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        return grad_x_input(self.model, inputs, target)  # one pass: no separate prediction


class IntegratedGradients(Attribution):
    """Integrated Gradients (Sundararajan et al. 2017): zero baseline, 50 midpoint steps.

    Example
    -------
    >>> maps = IntegratedGradients(model, steps=50).attribute(x)
    >>> maps.flatten(1).sum(1)   # ~ S(x) - S(0) (completeness)
    """

    name = "integrated_gradients"

    def __init__(
        self,
        model: nn.Module,
        steps: int = 50,
        baseline: float | Tensor = 0.0,
        internal_batch_size: int | None = None,
    ) -> None:
        super().__init__(model)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps, self.baseline, self.internal_batch_size = steps, baseline, internal_batch_size

    def _options(self) -> dict:
        return {"steps": self.steps}

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        _, t = self._predict(inputs, target)
        return integrated_gradients(
            self.model,
            inputs,
            t,
            steps=self.steps,
            baseline=self.baseline,
            internal_batch_size=self.internal_batch_size,
        )


class SmoothGrad(Attribution):
    """SmoothGrad (Smilkov et al. 2017): 25 samples, noise std 0.15 of each input's range.

    ``squared=True`` gives SmoothGrad-Squared. ``seed`` makes the noise reproducible.

    Example
    -------
    >>> maps = SmoothGrad(model, samples=25, noise_level=0.15, seed=0).attribute(x)
    """

    name = "smoothgrad"

    def __init__(
        self,
        model: nn.Module,
        samples: int = 25,
        noise_level: float = 0.15,
        squared: bool = False,
        seed: int | None = 0,
        internal_batch_size: int | None = None,
    ) -> None:
        super().__init__(model)
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if noise_level < 0:
            raise ValueError(f"noise_level must be >= 0, got {noise_level}")
        self.samples, self.noise_level, self.squared = samples, noise_level, squared
        self.seed, self.internal_batch_size = seed, internal_batch_size

    def _options(self) -> dict:
        return {"samples": self.samples, "noise_level": self.noise_level, "squared": self.squared}

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        _, t = self._predict(inputs, target)
        gen = torch.Generator().manual_seed(self.seed) if self.seed is not None else None
        return smoothgrad(
            self.model,
            inputs,
            t,
            samples=self.samples,
            noise_level=self.noise_level,
            squared=self.squared,
            generator=gen,
            internal_batch_size=self.internal_batch_size,
        )
