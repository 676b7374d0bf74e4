"""What ROAR's retrained networks see: pixel ranks, the modified images and the removal masks.

Pixel ranks come from the explained model's maps (cached per method under ``cache_dir/maps``);
the top fraction of every image is replaced (:func:`replace_removed`: the training mean, or
ROAD's noisy linear imputation) or, for the mask-only control, shown alone
(:func:`removal_mask_images`). Used by :mod:`.roar`.

Example
-------
>>> mask_top_pixels(x, rank, 0.5, x.mean(dim=(0, 2, 3)))      # (N, C, H, W)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.attribution_maps import MethodLike, compute_maps
from prunegrad_lite.benchmarks.cache import check_ranks, load_tensor_cell, store_tensor_cell
from prunegrad_lite.benchmarks.removal import rank_pixels, removal_masks

__all__ = [
    "load_or_compute_ranks",
    "mask_top_pixels",
    "other_class_targets",
    "removal_mask_images",
    "replace_removed",
    "validation_split",
]


def mask_top_pixels(images: Tensor, rank: Tensor, fraction: float, fill: Tensor) -> Tensor:
    """Replace the top ``fraction`` of pixels of every image by ``fill``, all channels together.

    ``images`` (N, C, H, W); ``rank`` (N, H*W) from
    :func:`~prunegrad_lite.benchmarks.removal.rank_pixels` (0 = most important); ``fill`` (C,)
    per-channel values. Returns a new tensor; ``round(fraction * H * W)`` pixels are replaced.

    Example
    -------
    >>> mask_top_pixels(x, rank, 0.5, x.mean(dim=(0, 2, 3)))      # (N, C, H, W)
    """
    c, h, w = images.shape[1:]
    removed = removal_masks(rank, [fraction], "morf", (h, w))[0].unsqueeze(1)  # (N, 1, H, W)
    return torch.where(removed, fill.view(1, c, 1, 1).to(images), images)


def removal_mask_images(
    rank: Tensor, fraction: float, channels: int, size: tuple[int, int]
) -> Tensor:
    """The mask-only control's inputs: 1 where ROAR replaces a pixel, 0 elsewhere.

    ``rank`` (N, H*W) as for :func:`mask_top_pixels`; returns (N, channels, H, W) float32 with
    the same value in every channel.

    Example
    -------
    >>> removal_mask_images(rank, 0.5, 1, (28, 28)).mean()      # 0.5: half the pixels removed
    """
    removed = removal_masks(rank, [fraction], "morf", size)[0].unsqueeze(1)  # (N, 1, H, W)
    return removed.float().expand(-1, channels, -1, -1).contiguous()


def load_or_compute_ranks(
    model: nn.Module,
    images: Tensor,
    name: str,
    method: MethodLike,
    options: dict[str, Any],
    target: Tensor,
    cache_dir: Path | None,
    setup: str,
    batch_size: int,
    seed: int,
    progress: bool,
) -> Tensor:
    """Pixel ranks (N, H*W) of one method for all images, from the cache when there."""
    path = None if cache_dir is None else cache_dir / "maps" / setup / f"{name}.pt"
    size = (images.shape[0], images.shape[-2] * images.shape[-1])  # validated read (cache.py)
    cached = None if path is None else load_tensor_cell(path, shape=size, check=check_ranks)
    if cached is not None:
        return cached.long()
    maps = compute_maps(
        model,
        images,
        method,
        options=options,
        target=target,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        desc=f"ROAR maps: {name}",
    )
    rank = rank_pixels(maps, torch.Generator().manual_seed(seed))  # (N, P)
    if path is not None:
        small = rank.to(torch.int16 if rank.shape[1] < 2**15 else torch.int32)
        store_tensor_cell(path, small)  # checksummed, atomic; releases the lock
    return rank


def other_class_targets(predicted: Tensor, num_classes: int, seed: int) -> Tensor:
    """A random class per image, never the predicted one (seeded)."""
    if num_classes < 2:
        raise ValueError("the other-class control needs at least two classes")
    generator = torch.Generator().manual_seed(seed + 7919)
    offset = torch.randint(1, num_classes, predicted.shape, generator=generator)  # (N,)
    return (predicted + offset) % num_classes


def validation_split(num: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (train, validation) of ``num`` training images; the same for every cell."""
    order = torch.randperm(num, generator=torch.Generator().manual_seed(seed + 104729))
    held = int(round(fraction * num))
    if fraction > 0 and (held < 2 or num - held < 2):
        raise ValueError(f"{num} training images are too few for a {fraction:.0%} validation split")
    return order[held:].sort().values, order[:held].sort().values


def replace_removed(images: Tensor, removed: Tensor, fill: Tensor, how: str, seed: int) -> Tensor:
    """``images`` (N, C, H, W) with the ``removed`` (N, 1, H, W) pixels replaced, all channels."""
    if how == "mean":
        c = images.shape[1]
        return torch.where(removed, fill.view(1, c, 1, 1).to(images), images)
    from prunegrad_lite.benchmarks.imputation import noisy_linear_impute

    generator = torch.Generator().manual_seed(seed)
    chunk = 256  # images per sparse system: bounded memory, one solve per chunk
    return torch.cat(
        [
            noisy_linear_impute(images[i : i + chunk], removed[i : i + chunk], generator=generator)
            for i in range(0, len(images), chunk)
        ]
    )
