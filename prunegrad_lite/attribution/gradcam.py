"""Grad-CAM (Selvaraju et al. 2017): a class-weighted sum of one layer's feature maps.

For a feature map A (N, K, h, w) and the target logit S_c::

    w_k   = mean over (h, w) of dS_c/dA_k          # one weight per channel
    cam   = ReLU(sum_k w_k A_k)                    # (N, 1, h, w)
    map   = bilinear upsampling of cam to (H, W), copied to every input channel

Which feature map (``layer``):

* ``None`` (default): the output of the **last ReLU-family activation call whose output is
  4-D** (N, K, h, w), i.e. the last convolutional block with its ReLU applied. It is found by
  intercepting the activation calls (:func:`intercept_activations`), so it works whatever
  wrote the ReLU: ``nn.ReLU`` (reused or in-place), ``F.relu`` (DenseNet's last one), ReLU6
  (MobileNet). ResNet: the ReLU after the last residual addition; VGG: the ReLU before the
  last max-pool.
* an ``nn.Module`` of the model, or its name as in ``model.named_modules()``: the module's
  output (of its **last** call when it is called more than once), caught with a forward hook
  that is removed when the call ends.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite, intercept_activations
from prunegrad_lite.attribution.base import (
    Attribution,
    TargetLike,
    resolve_target,
    target_scores,
)

__all__ = ["GradCAM", "gradcam"]


def _layer_output(model: nn.Module, inputs: Tensor, layer: nn.Module) -> tuple[Tensor, Tensor]:
    """Logits (N, K) and the output of ``layer`` (its last call), with the graph kept."""
    seen: list[Tensor] = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"Grad-CAM layer {type(module).__name__} returns {type(output).__name__}, "
                "not a tensor: pick a layer whose output is one feature map (N, K, h, w)"
            )
        seen.append(output)
        return output.clone()  # later in-place ops (e.g. an in-place ReLU) act on the copy

    handle = layer.register_forward_hook(hook)
    try:
        logits = model(inputs)
    finally:
        handle.remove()
    if not seen:
        raise ValueError(
            f"the Grad-CAM layer {type(layer).__name__} was not called in the forward pass: "
            "pass a module the model runs (or layer=None for the last ReLU feature map)"
        )
    return logits, seen[-1]


def _last_activation_output(model: nn.Module, inputs: Tensor) -> tuple[Tensor, Tensor]:
    """Logits (N, K) and the output of the last 4-D ReLU-family activation call."""
    last: list[Tensor] = []

    def keep_4d(site: ActivationSite, out: Tensor) -> Tensor:
        if out.ndim == 4:
            last[:] = [out]
        return out

    with intercept_activations(model, keep_4d, names=False):
        logits = model(inputs)
    if not last:
        raise ValueError(
            f"{type(model).__name__} has no ReLU-family activation with a 4-D output "
            "(N, K, h, w), so Grad-CAM has no convolutional feature map to weight: pass "
            "layer=<a conv module> or use a gradient method"
        )
    return logits, last[0]


def gradcam(
    model: nn.Module, inputs: Tensor, target: TargetLike, layer: nn.Module | None = None
) -> Tensor:
    """Grad-CAM map (N, C, H, W), non-negative, equal across channels; see the module docstring.

    ``target`` (None: the predicted class) is resolved on this pass's own logits.
    """
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(True)
        if layer is None:
            logits, feats = _last_activation_output(model, x)
        else:
            logits, feats = _layer_output(model, x, layer)
        if feats.ndim != 4:
            raise ValueError(
                f"Grad-CAM needs a 4-D feature map (N, K, h, w); the layer gives shape "
                f"{tuple(feats.shape)}: pick a convolutional layer"
            )
        target = resolve_target(target, logits, x.shape[0])
        (grads,) = torch.autograd.grad(target_scores(logits, target).sum(), feats)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    cam = F.relu((weights * feats.detach()).sum(dim=1, keepdim=True))  # (N, 1, h, w)
    cam = F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False)
    return cam.expand(-1, inputs.shape[1], -1, -1).contiguous()  # (N, C, H, W)


class GradCAM(Attribution):
    """Grad-CAM: ``ReLU(sum_k mean(dS/dA_k) A_k)`` upsampled to the input size.

    Parameters
    ----------
    model : a CNN in eval mode.
    layer : ``None`` (default) for the output of the last ReLU-family activation with a 4-D
        output (last conv block, ReLU applied; found by intercepting the activation calls),
        or an ``nn.Module`` of ``model`` / its dotted name, whose output (last call) is used.

    Defaults: ReLU applied to the weighted sum (non-negative map); channel weights are the
    *spatial mean* of the gradient; upsampling is bilinear with ``align_corners=False``
    (Captum's ``LayerAttribution.interpolate``); the (N, 1, H, W) map is copied to all C input
    channels so the result is shaped like the input. Needs inputs of shape (N, C, H, W).

    Example
    -------
    >>> cam = GradCAM(model)                       # or GradCAM(model, layer=model.layer4)
    >>> maps = cam.attribute(x)                    # (N, C, H, W), >= 0
    >>> maps[:, 0]                                 # the map itself (channels are copies)
    """

    name = "gradcam"

    def __init__(self, model: nn.Module, layer: nn.Module | str | None = None) -> None:
        super().__init__(model)
        if isinstance(layer, str):
            try:
                layer = model.get_submodule(layer)
            except AttributeError as err:
                raise ValueError(f"model has no submodule named {layer!r}") from err
        if layer is not None and not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be an nn.Module, a module name or None, got {layer!r}")
        self.layer = layer

    def _options(self) -> dict:
        return {"layer": None if self.layer is None else type(self.layer).__name__}

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        if inputs.ndim != 4:
            raise ValueError(
                f"Grad-CAM needs image inputs (N, C, H, W), got shape {tuple(inputs.shape)}"
            )
        return gradcam(self.model, inputs, target, self.layer)  # one pass: no separate prediction
