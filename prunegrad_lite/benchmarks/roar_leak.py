"""Does the replacement hide *where* pixels were removed? A detector trained on modified images.

ROAR's mean fill leaves the removal mask in the image (a flat region of one colour), and the
mask can carry the class (the mask-only control). ROAD's noisy linear imputation (Rong et al.
2022, ICML, "A Consistent and Efficient Evaluation Strategy for Attribution Methods") fills each
removed pixel from its neighbours to hide the mask. Whether it does on a given dataset is
measured, not assumed: a small fully convolutional network is trained to predict, pixel by
pixel, which pixels were removed, from the modified image alone (half the images train it, the
other half test it). Its balanced accuracy on the held-out half is 0.5 when the mask is hidden
and 1 when it is fully visible. (Whether the class can be told from the modified image is the
ROAR cell itself, run with ``RoarConfig(replacement="noisy_linear")``; this module measures
whether the mask, which the mask-only control shows to carry the class, survives imputation.)

Example
-------
>>> removed = removal_masks(rank, [0.5], "morf", (28, 28))[0].unsqueeze(1)     # (N, 1, H, W)
>>> removal_detectability(images, removed, replacement="noisy_linear").balanced_accuracy
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Detectability", "removal_detectability", "replace_removed"]


@dataclass(frozen=True)
class Detectability:
    """How well removed pixels are told from kept ones on held-out images."""

    replacement: str
    balanced_accuracy: float  # mean of the hit rates on removed and on kept pixels
    removed_hit_rate: float  # removed pixels called removed
    kept_hit_rate: float  # kept pixels called kept
    removed_fraction: float  # of all pixels
    num_train: int
    num_test: int
    epochs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _detector(channels: int, width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 1, 1),
    )


def replace_removed(
    images: Tensor, removed: Tensor, replacement: str, fill: Tensor | None = None, seed: int = 0
) -> Tensor:
    """``images`` (N, C, H, W) with ``removed`` (N, 1, H, W) pixels replaced, all channels:
    ``"mean"`` by ``fill`` (C,) (default: the images' per-channel mean) or ``"noisy_linear"``
    (ROAD's imputation, noise std 0.01, seeded)."""
    from prunegrad_lite.benchmarks.roar_inputs import replace_removed as _replace

    if fill is None:
        fill = images.mean(dim=(0, 2, 3))
    return _replace(images, removed, fill, replacement, seed)


def removal_detectability(
    images: Tensor,
    removed: Tensor,
    *,
    replacement: str = "noisy_linear",
    fill: Tensor | None = None,
    epochs: int = 5,
    batch_size: int = 128,
    seed: int = 0,
) -> Detectability:
    """Train a per-pixel detector of removed pixels on half the modified images, test it on
    the other half.

    ``images`` (N, C, H, W) normalised; ``removed`` (N, 1, H, W) bool. Adam (lr 3e-3), the loss
    weighted so that removed and kept pixels count equally; ``epochs`` passes; seeded.
    """
    if images.ndim != 4 or removed.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(
            f"expected images (N, C, H, W) and removed (N, 1, H, W), got "
            f"{tuple(images.shape)} and {tuple(removed.shape)}"
        )
    if len(images) < 4:
        raise ValueError("need at least 4 images (half train the detector, half test it)")
    x = replace_removed(images.float(), removed, replacement, fill, seed)
    target = removed.float()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    half = len(x) // 2
    tr, te = order[:half], order[half:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _detector(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    p = float(target[tr].mean().clamp(1e-3, 1 - 1e-3))
    pos_weight = torch.tensor((1 - p) / p)  # removed and kept pixels weigh the same
    net.train()
    for _ in range(epochs):
        perm = tr[torch.randperm(len(tr), generator=generator)]
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            loss = F.binary_cross_entropy_with_logits(
                net(x[idx]), target[idx], pos_weight=pos_weight
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        said = torch.cat([net(x[te[i : i + 512]]) > 0 for i in range(0, len(te), 512)])
    truth = removed[te]
    hit_removed = float((said & truth).sum() / truth.sum().clamp(min=1))
    hit_kept = float((~said & ~truth).sum() / (~truth).sum().clamp(min=1))
    return Detectability(
        replacement,
        (hit_removed + hit_kept) / 2,
        hit_removed,
        hit_kept,
        float(target.mean()),
        len(tr),
        len(te),
        epochs,
    )
