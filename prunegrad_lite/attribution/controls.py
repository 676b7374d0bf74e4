"""Control maps: what a benchmark score means is read against these.

* :class:`RandomMap` ranks pixels uniformly at random: a metric must put every real method
  apart from it (ROAR's random-ranking control).
* :class:`EdgeMap` is the Sobel edge magnitude of the input, computed without the model's
  weights: an "explanation" that passes for plausible to the eye yet cannot follow the model,
  so it must *fail* the sanity checks (its map does not change when the weights are randomised).

Both keep the shared interface (``attribute(inputs, target)``, output shaped like the inputs)
and still check the target against the model's logits, so a wrong target raises here too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunegrad_lite.attribution.base import Attribution, TargetLike

__all__ = ["EdgeMap", "RandomMap", "sobel_magnitude"]


class RandomMap(Attribution):
    """Uniform random map in [0, 1), one independent value per input element.

    Parameters
    ----------
    model : only used to check the inputs and the target (the values ignore it).
    seed : ``int`` (default 0: every call returns the same maps for the same input shape),
        a ``torch.Generator`` (consumed; successive calls differ) or ``None`` (torch's global RNG).

    The values are drawn on the CPU and moved, so a seed gives the same map on every device.

    Example
    -------
    >>> maps = RandomMap(model, seed=0).attribute(x)     # (N, C, H, W) in [0, 1)
    >>> torch.equal(maps, RandomMap(model, seed=0).attribute(x))
    True
    """

    name = "random"

    def __init__(self, model: nn.Module, seed: int | torch.Generator | None = 0) -> None:
        super().__init__(model)
        self.seed = seed

    def _options(self) -> dict:
        return {"seed": self.seed if not isinstance(self.seed, torch.Generator) else "Generator"}

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        self._predict(inputs, target)  # checks the target; the values do not use the model
        if isinstance(self.seed, torch.Generator):
            gen = self.seed
        else:
            gen = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        device = gen.device if gen is not None else torch.device("cpu")
        values = torch.rand(inputs.shape, generator=gen, device=device)
        return values.to(device=inputs.device, dtype=inputs.dtype)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(images: Tensor) -> Tensor:
    """Sobel gradient magnitude ``sqrt(gx^2 + gy^2)`` of each channel (N, C, H, W).

    Borders are replicate-padded, so the image frame is not an edge.
    """
    n, c, h, w = images.shape
    kx = _SOBEL_X.to(images)
    kernels = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    padded = F.pad(images.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(padded, kernels)  # (N*C, 2, H, W)
    return g.square().sum(1).sqrt().view(n, c, h, w)


class EdgeMap(Attribution):
    """Sobel edge magnitude of the input image: a control that ignores the model's weights.

    Defaults: the Sobel magnitude is computed on each channel of the (normalised) input,
    the **maximum over channels** is taken per pixel (an edge in any colour counts) and copied
    to every channel, so the result is shaped like the input and non-negative. Borders are
    replicate-padded. The model only checks the inputs and the target.

    Example
    -------
    >>> maps = EdgeMap(model).attribute(x)       # (N, C, H, W), >= 0
    >>> maps[:, 0]                               # the edge map (channels are copies)
    >>> # unchanged when the model's weights are re-initialised
    """

    name = "edge"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        if inputs.ndim != 4:
            raise ValueError(f"EdgeMap needs image inputs (N, C, H, W), got {tuple(inputs.shape)}")
        self._predict(inputs, target)  # checks the target; the edges do not use the model
        edges = sobel_magnitude(inputs).amax(dim=1, keepdim=True)  # (N, 1, H, W)
        return edges.expand(-1, inputs.shape[1], -1, -1).contiguous()
