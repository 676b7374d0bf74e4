"""PruneGrad's variants: other neuron scores for step 1, other methods for step 3.

The method itself is :func:`~prunegrad_lite.attribution.prunegrad.prunegrad`. Its options swap
one step for another (docs/method.md section 1, "Variants"):

* step 1, ``scoring="random"`` (:func:`random_scores`): the random-pruning control;
* step 1, ``scoring="integrated_gradients"`` (:func:`integrated_scores`): PruneInt;
* step 3, ``inner=`` (:data:`INNER_METHODS`): Gradient x Input, Integrated Gradients, SmoothGrad
  or the iterative perturbation (:func:`pruned_perturbation`) run inside the pruned network.

Steps 2 and 3 (:mod:`~prunegrad_lite.attribution.pruning`) are shared by every variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite, intercept_activations
from prunegrad_lite.attribution.base import input_gradient, target_scores
from prunegrad_lite.attribution.gradients import (
    grad_x_input,
    gradient,
    integrated_gradients,
    smoothgrad,
)

__all__ = ["INNER_METHODS", "integrated_scores", "pruned_perturbation", "random_scores"]

# --------------------------------------------------------------------- step 1: other scores


def random_scores(
    sites: Sequence[ActivationSite], inputs: Tensor, generator: torch.Generator | None
) -> list[Tensor]:
    """The control: i.i.d. uniform scores, per site (N, *site.shape), from ``generator``.

    Drawn on the generator's device (CPU by default) and moved to the inputs' device, so a
    seed gives the same masks on every device.
    """
    n = inputs.shape[0]
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return [
        torch.rand((n, *s.shape), generator=generator, device=gen_device).to(inputs.device)
        for s in sites
    ]


def integrated_scores(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    sites: Sequence[ActivationSite],
    alphas: int,
    internal_batch_size: int | None,
) -> list[Tensor]:
    """PruneInt: per site, ``|a * mean over alpha of dS/da evaluated at alpha * a|``.

    ``alpha in linspace(0, 1, alphas)``; the site's output is scaled, the rest of the network
    is not. One pass per site and chunk of alphas, every sample at once. ``target`` (N,) is
    resolved; returns per site (N, *site.shape).
    """
    n = inputs.shape[0]
    alpha = torch.linspace(0.0, 1.0, alphas, dtype=inputs.dtype, device=inputs.device)
    per_chunk = max(1, (internal_batch_size or 64) // n)
    scores: list[Tensor] = []
    for site in sites:  # a loop over layers; all samples and alphas are batched
        grad_sum = torch.zeros((n, *site.shape), dtype=inputs.dtype, device=inputs.device)
        act = None
        for start in range(0, alphas, per_chunk):
            a_chunk = alpha[start : start + per_chunk]  # (k,)
            k = a_chunk.shape[0]
            captured: list[Tensor] = []

            def scale(
                s: ActivationSite, out: Tensor, _a=a_chunk, _k=k, _cap=captured, _site=site
            ) -> Tensor:
                if s.index != _site.index:
                    return out
                scaled = out.view(_k, n, *_site.shape) * _a.view(-1, 1, *([1] * len(_site.shape)))
                scaled = scaled.view(out.shape)
                _cap.append((out, scaled))
                return scaled

            with torch.enable_grad():
                x = inputs.detach().repeat(k, *([1] * (inputs.ndim - 1))).requires_grad_(True)
                with intercept_activations(model, scale, names=False):
                    out_logits = model(x)
                out, scaled = captured[0]
                (g,) = torch.autograd.grad(
                    target_scores(out_logits, target.repeat(k)).sum(), scaled, allow_unused=True
                )
            if g is not None:
                grad_sum += g.view(k, n, *site.shape).sum(0)
            act = out.detach().view(k, n, *site.shape)[0]
        scores.append((act * grad_sum / alphas).abs())
    return scores


# ------------------------------------------------------------ step 3: other inner methods


def pruned_perturbation(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    steps: int = 10,
    step_size: float | None = None,
) -> Tensor:
    """Iterative perturbation: projected gradient ascent on S_c within an L2 ball around x.

    ``x_{t+1} = proj(x_t + step_size * g_t / ||g_t||)`` with ``g_t = dS_c/dx (x_t)`` and the
    projection onto ``||x' - x||_2 <= epsilon`` (per sample, in normalised input units). Returns
    the perturbation ``x_T - x`` (N, ...). ``step_size`` defaults to ``2.5 * epsilon / steps``.
    With ``steps=1, step_size=epsilon`` it is ``epsilon * PruneGrad / ||PruneGrad||``: PruneGrad
    is its one-step version. Run it inside :func:`apply_masks` to perturb the pruned network.
    """
    if epsilon <= 0 or steps < 1:
        raise ValueError(f"epsilon must be > 0 and steps >= 1, got {epsilon} and {steps}")
    step = 2.5 * epsilon / steps if step_size is None else step_size
    shape = (-1,) + (1,) * (inputs.ndim - 1)
    delta = torch.zeros_like(inputs)
    for _ in range(steps):  # iterations of the ascent; every sample of the batch at once
        g, _ = input_gradient(model, inputs + delta, target)
        g_norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        delta = delta + step * g / g_norm
        d_norm = delta.flatten(1).norm(dim=1).view(shape)
        delta = delta * torch.clamp(epsilon / d_norm.clamp_min(1e-12), max=1.0)
    return delta


#: Methods that step 3 can run inside the pruned network: name -> f(model, x, target, **options).
INNER_METHODS: dict[str, Callable[..., Tensor]] = {
    "gradient": gradient,
    "grad_x_input": grad_x_input,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "perturbation": pruned_perturbation,
}
