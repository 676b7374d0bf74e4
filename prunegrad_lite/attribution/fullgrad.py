"""FullGrad (Srinivas & Fleuret 2019): input-gradient plus the bias-gradients of every layer.

For a ReLU network (piecewise linear) with biases the logit decomposes exactly::

    S(x) = sum(x * dS/dx) + sum over layers l of sum(b_l * dS/dz_l)      (completeness)

where z_l is the output of layer l and b_l its bias, broadcast over z_l. Layers with a bias:
``Conv*d`` and ``Linear`` with ``bias``, and ``BatchNorm*d`` in eval mode, an affine map
``z = gamma * (u - mean) / sqrt(var + eps) + beta`` with effective bias
``beta - gamma * mean / sqrt(var + eps)``. :func:`fullgrad_decomposition` returns these raw
terms; :class:`FullGrad` turns them into a saliency map as the authors' reference code does::

    post(t)  = per sample: |t| - min, divided by (max + 1e-6)        # in [0, 1]
    map      = sum_c post(x * dS/dx)
               + sum over 4-D bias terms of sum_c upsample(post(b_l * dS/dz_l))

Upsampling is bilinear with ``align_corners=True`` (the reference). Non-spatial bias terms
(``Linear``, ``BatchNorm1d``) count in the decomposition but are not drawn, as in the reference.
Bias layers are found as modules (forward hooks, removed when the call ends); a bias added by
a functional call (``F.conv2d(x, w, b)``) is not seen. Other normalisations (LayerNorm,
GroupNorm) are not affine in the input, and a saturated ReLU6 outputs a constant 6 that no
layer's bias accounts for, so completeness holds for ReLU networks, not for models using those.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunegrad_lite.attribution.base import Attribution, TargetLike, checked, target_scores

__all__ = [
    "FullGrad",
    "FullGradDecomposition",
    "bias_layers",
    "fullgrad",
    "fullgrad_decomposition",
]

_BIAS_LAYERS = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)


@dataclass
class FullGradDecomposition:
    """The raw FullGrad terms of one batch, before any post-processing.

    Attributes
    ----------
    input_gradient : dS/dx, shaped like the inputs (N, C, H, W); the input term is
        ``inputs * input_gradient``.
    bias_terms : layer name -> ``b_l * dS/dz_l``, shaped like that layer's output
        (N, K, h, w) or (N, K); ``name#2`` for the second call of a reused module.
    scores : S(x), the target logits (N,).
    """

    input_gradient: Tensor
    bias_terms: dict[str, Tensor]
    scores: Tensor

    def completeness_sum(self, inputs: Tensor) -> Tensor:
        """``sum(x * dS/dx) + sum_l sum(b_l * dS/dz_l)`` per sample (N,): equals ``scores``."""
        total = (inputs * self.input_gradient).flatten(1).sum(1)
        for term in self.bias_terms.values():
            total = total + term.flatten(1).sum(1)
        return total


def _effective_bias(module: nn.Module) -> Tensor | None:
    """The bias a layer adds to its output (one value per channel), or None."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.training:
            raise ValueError(
                f"a {type(module).__name__} is in training mode: it normalises with batch "
                "statistics and is not an affine layer, so FullGrad is undefined. Call model.eval()"
            )
        if module.running_mean is None or module.running_var is None:
            raise ValueError(
                f"a {type(module).__name__} has no running statistics (track_running_stats="
                "False): it normalises with batch statistics even in eval mode, so FullGrad's "
                "decomposition does not hold"
            )
        scale = torch.rsqrt(module.running_var + module.eps)  # (K,)
        if module.weight is not None:
            scale = scale * module.weight
        shift = -module.running_mean * scale
        return shift + module.bias if module.bias is not None else shift
    return getattr(module, "bias", None)


def bias_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` that add a bias, in ``model.modules()`` order.

    Raises a ``ValueError`` for a BatchNorm that is not affine in its input (train mode or no
    running statistics), before anything runs, so a refused call changes nothing.
    """
    return [
        m for m in model.modules() if isinstance(m, _BIAS_LAYERS) and _effective_bias(m) is not None
    ]


def _broadcast_bias(module: nn.Module, bias: Tensor, out: Tensor) -> Tensor:
    """``bias`` (K,) shaped to broadcast over ``out``: last dim for Linear, dim 1 otherwise."""
    if isinstance(module, nn.Linear):
        return bias
    return bias.view(1, -1, *([1] * (out.ndim - 2)))


def fullgrad_decomposition(
    model: nn.Module, inputs: Tensor, target: Tensor
) -> FullGradDecomposition:
    """Input-gradient and per-layer bias-gradient terms of ``S_target`` (see module docstring).

    One forward and one backward pass; every hook is removed before returning, even on error.
    ``target`` is a resolved long tensor (N,).
    """
    names = {m: n or "<model>" for n, m in model.named_modules()}
    biased = bias_layers(model)
    outputs: list[tuple[str, nn.Module, Tensor]] = []
    calls: dict[str, int] = {}

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        outputs.append((name if calls[name] == 1 else f"{name}#{calls[name]}", module, output))
        return output.clone()  # a later in-place op (ReLU) must not change the tensor we keep

    handles = [m.register_forward_hook(hook) for m in biased]
    try:
        with torch.enable_grad():
            x = inputs.detach().requires_grad_(True)
            logits = model(x)  # (N, K)
            scores = target_scores(logits, target)  # (N,)
            grads = torch.autograd.grad(
                scores.sum(), [x] + [out for _, _, out in outputs], allow_unused=True
            )
    finally:
        for h in handles:
            h.remove()
    terms = {}
    for (name, module, out), grad in zip(outputs, grads[1:]):
        grad = torch.zeros_like(out) if grad is None else grad
        bias = _broadcast_bias(module, _effective_bias(module).detach(), out)
        terms[name] = bias * grad  # (N, K, ...) like the layer's output
    return FullGradDecomposition(grads[0], terms, scores.detach())


def _postprocess(t: Tensor, eps: float = 1e-6) -> Tensor:
    """The reference's post-processing: |t| rescaled per sample to [0, 1]."""
    t = t.abs()
    flat = t.flatten(1)
    shape = (-1,) + (1,) * (t.ndim - 1)
    t = t - flat.min(1).values.view(shape)
    return t / (t.flatten(1).max(1).values.view(shape) + eps)


def fullgrad(model: nn.Module, inputs: Tensor, target: Tensor) -> Tensor:
    """FullGrad saliency (N, C, H, W), non-negative, equal across channels."""
    dec = fullgrad_decomposition(model, inputs, target)
    size = inputs.shape[-2:]
    cam = _postprocess(inputs * dec.input_gradient).sum(1, keepdim=True)  # (N, 1, H, W)
    for term in dec.bias_terms.values():
        if term.ndim == 4:  # spatial (conv / BatchNorm2d) terms only, as in the reference
            up = F.interpolate(_postprocess(term), size=size, mode="bilinear", align_corners=True)
            cam = cam + up.sum(1, keepdim=True)
    return cam.expand(-1, inputs.shape[1], -1, -1).contiguous()


class FullGrad(Attribution):
    """FullGrad (Srinivas & Fleuret 2019), the reference formulation; not in Captum.

    Defaults: input term ``x * dS/dx`` and every spatial bias term ``b * dS/dz`` (conv with
    bias, BatchNorm2d in eval mode with effective bias ``beta - gamma*mean/sqrt(var+eps)``) are
    each made absolute, rescaled per sample to [0, 1] (``eps = 1e-6``), bilinearly upsampled
    (``align_corners=True``), summed over channels and added. The result is non-negative and
    the (N, 1, H, W) map is copied to all input channels. Non-spatial terms (Linear biases) are
    not drawn but are in :func:`fullgrad_decomposition`, whose terms sum to the logit.

    Example
    -------
    >>> fg = FullGrad(model)
    >>> maps = fg.attribute(x)                         # (N, C, H, W), >= 0
    >>> dec = fg.decompose(x)                          # raw terms; dec.completeness_sum(x)
    """

    name = "fullgrad"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        if inputs.ndim != 4:
            raise ValueError(f"FullGrad needs image inputs (N, C, H, W), got {tuple(inputs.shape)}")
        bias_layers(self.model)  # refuse a train-mode BatchNorm before any forward pass
        _, t = self._predict(inputs, target)
        return fullgrad(self.model, inputs, t)

    def decompose(self, inputs: Tensor, target: TargetLike = None) -> FullGradDecomposition:
        """The raw decomposition of :func:`fullgrad_decomposition`, with the usual checks."""
        with checked(self.model, inputs) as x:
            bias_layers(self.model)
            _, t = self._predict(x, target)
            return fullgrad_decomposition(self.model, x, t)
