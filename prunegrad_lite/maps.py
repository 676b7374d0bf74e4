"""From attribution tensors to pixel maps and displayable images.

An attribution ``A`` is shaped like the inputs, (N, C, H, W). The benchmarks rank *pixels*, so
channels are reduced first (docs/method.md section 1, "Maps"):

* ``"max_abs"``: ``max_c |A_c|``, non-negative: the ranking map of every benchmark.
* ``"signed_max_abs"``: per pixel, the channel value of largest magnitude *with its sign*:
  the signed map for display (a diverging colormap centred at 0).
* ``"sum"`` / ``"sum_abs"``: ``sum_c A_c`` / ``sum_c |A_c|`` (what some papers draw).

Maps are then scaled per sample (:func:`normalize_map`) so that one colour bar fits all.

Images: :func:`to_display_image` undoes the normalisation ``x = (pixel - mean) / std`` with
``mean`` and ``std`` given **in the same pixel units as** ``pixel_max`` (one convention for all
models):

* torchvision ImageNet: ``mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)`` (pixels in
  [0, 1], ``pixel_max=1``, the default);
* EfficientNet-Lite0, ``(x - 127) / 128`` on 0..255 pixels: ``mean=127, std=128, pixel_max=255``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CLIP_PERCENTILE",
    "REDUCTIONS",
    "clip_percentile",
    "normalize_map",
    "reduce_channels",
    "to_display_image",
]

REDUCTIONS = ("max_abs", "signed_max_abs", "sum", "sum_abs")
#: The percentile of ``|map|`` at which maps are clipped or scaled for display by default: a few
#: outlier pixels would otherwise set the colour scale alone.
CLIP_PERCENTILE = 99.5


def _as_tensor(x: Tensor | np.ndarray) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))


def reduce_channels(attr: Tensor | np.ndarray, how: str = "max_abs") -> Tensor:
    """Reduce an attribution (N, C, H, W) over channels to a pixel map (N, H, W).

    Parameters
    ----------
    attr : attribution shaped like the inputs, (N, C, H, W) (a numpy array is converted).
    how : ``"max_abs"`` (default; ``max_c |A_c|``, for ranking), ``"signed_max_abs"`` (the
        value of the largest-magnitude channel, sign kept; the first channel wins a tie),
        ``"sum"`` or ``"sum_abs"``.

    Example
    -------
    >>> a = torch.tensor([[[[1.0]], [[-3.0]]]])            # (1, 2, 1, 1)
    >>> reduce_channels(a, "max_abs"), reduce_channels(a, "signed_max_abs")
    (tensor([[[3.]]]), tensor([[[-3.]]]))
    """
    a = _as_tensor(attr)
    if a.ndim != 4:
        raise ValueError(f"attr must be (N, C, H, W), got shape {tuple(a.shape)}")
    if how == "max_abs":
        return a.abs().amax(dim=1)
    if how == "signed_max_abs":
        idx = a.abs().argmax(dim=1, keepdim=True)  # (N, 1, H, W)
        return a.gather(1, idx).squeeze(1)
    if how == "sum":
        return a.sum(dim=1)
    if how == "sum_abs":
        return a.abs().sum(dim=1)
    raise ValueError(f"how must be one of {REDUCTIONS}, got {how!r}")


def _per_sample_quantile(m: Tensor, q: float) -> Tensor:
    """The q-th percentile of ``|m|`` for each sample, shaped to broadcast over ``m``."""
    if not 0 < q <= 100:
        raise ValueError(f"q must be a percentile in (0, 100], got {q}")
    flat = m.detach().abs().flatten(1).to(torch.float64)
    value = torch.quantile(flat, q / 100.0, dim=1)  # linear interpolation, as numpy
    return value.to(m.dtype).view(-1, *([1] * (m.ndim - 1)))


def normalize_map(
    m: Tensor | np.ndarray, how: str = "max_abs", q: float = CLIP_PERCENTILE
) -> Tensor:
    """Scale each sample's map (N, ...) into [-1, 1] ([0, 1] for a non-negative map).

    Parameters
    ----------
    m : maps, one per sample along the first dimension.
    how : ``"max_abs"`` (default; divide by ``max |m|``) or ``"percentile"`` (divide by the
        ``q``-th percentile of ``|m|`` and clip to [-1, 1], so a few extreme pixels do not
        wash out the rest).
    q : the percentile for ``how="percentile"``; default :data:`CLIP_PERCENTILE` (99.5).

    An all-zero map stays zero. Signs are kept.

    Example
    -------
    >>> m = reduce_channels(maps, "signed_max_abs")     # (N, H, W)
    >>> normalize_map(m).abs().amax(dim=(1, 2))          # 1 for every non-zero map
    """
    t = _as_tensor(m)
    if how == "max_abs":
        scale = t.detach().abs().flatten(1).amax(1).view(-1, *([1] * (t.ndim - 1)))
        return t / torch.where(scale > 0, scale, torch.ones_like(scale))
    if how == "percentile":
        scale = _per_sample_quantile(t, q)
        return (t / torch.where(scale > 0, scale, torch.ones_like(scale))).clamp(-1.0, 1.0)
    raise ValueError(f"how must be 'max_abs' or 'percentile', got {how!r}")


def clip_percentile(m: Tensor | np.ndarray, q: float = CLIP_PERCENTILE) -> Tensor:
    """Clip each sample's map (N, ...) to ``[-p, p]``, p the ``q``-th percentile of ``|m|``.

    ``q`` defaults to :data:`CLIP_PERCENTILE` (99.5).

    Example
    -------
    >>> clipped = clip_percentile(maps, q=99.5)   # same shape, signs kept, outliers capped
    """
    t = _as_tensor(m)
    p = _per_sample_quantile(t, q)
    return torch.maximum(torch.minimum(t, p), -p)


def to_display_image(
    x: Tensor | np.ndarray,
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
    pixel_max: float = 1.0,
) -> np.ndarray:
    """Undo ``x = (pixel - mean) / std`` and return channels-last numpy images in [0, 1].

    Parameters
    ----------
    x : normalised images, (N, C, H, W) or one image (C, H, W).
    mean, std : per-channel (length C) or scalar, **in pixel units** (see ``pixel_max``);
        defaults 0 and 1 (``x`` already holds pixels).
    pixel_max : the value of a white pixel in those units: 1 (default) for torchvision-style
        normalisation, 255 for the EfficientNet ``(x - 127) / 128`` style.

    Returns (N, H, W, C) or (H, W, C) float32, ``pixel / pixel_max`` clipped to [0, 1].

    Example
    -------
    >>> img = to_display_image(x, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    >>> img = to_display_image(x, mean=127, std=128, pixel_max=255)   # EfficientNet-Lite0
    >>> img.shape                                                      # (N, H, W, 3)
    """
    t = _as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim not in (3, 4):
        raise ValueError(f"x must be (N, C, H, W) or (C, H, W), got shape {tuple(t.shape)}")
    c = t.shape[-3]
    shape = (c, 1, 1)
    m = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    s = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    for name, v in (("mean", m), ("std", s)):
        if v.numel() not in (1, c):
            raise ValueError(f"{name} has {v.numel()} values but the images have {c} channels")
    pixels = t * s.expand(c).view(shape) + m.expand(c).view(shape)
    img = (pixels / pixel_max).clamp(0.0, 1.0)
    return img.movedim(-3, -1).numpy().astype(np.float32)
