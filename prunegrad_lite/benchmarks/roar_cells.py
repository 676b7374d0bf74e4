"""ROAR's independent units of work, as an executor (:mod:`.executor`) runs them: the pixel
ranks of one ranking, and one retrained cell (ranking, fraction, training seed, variant).

Each is a module-level function of picklable inputs (the data shared by every cell, a
:class:`RoarData`, and the cell's own :class:`RoarCellSpec`), so that it runs the same in this
process or in a Ray worker on another machine. Each reads its result from the cache when it is
there and otherwise computes it and writes it there atomically, holding the cell's lock (a killed
worker's lock is released by the kernel; one whose cell raised is released by the executor). What
a cell computes depends only on its inputs and its own seeds (the recipe's seed, the ROAR seed),
never on which process runs it or in which order, so a grid gives the same records either way.

Example
-------
>>> record = roar_cell(data, rank, spec)      # from the cache, or retrained and stored there
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.attribution_maps import MethodLike, on_device
from prunegrad_lite.benchmarks.cache import (
    check_ranks,
    load_json_cell,
    read_json,
    read_tensor,
    store_json_cell,
)
from prunegrad_lite.benchmarks.removal import removal_masks
from prunegrad_lite.benchmarks.roar_config import BASELINE
from prunegrad_lite.benchmarks.roar_inputs import (
    load_or_compute_ranks,
    removal_mask_images,
    replace_removed,
)
from prunegrad_lite.training import TrainConfig, train_model

__all__ = [
    "CELL_KEYS",
    "RanksSpec",
    "RoarCellSpec",
    "RoarData",
    "cached_ranks",
    "cached_record",
    "ranks_cell",
    "roar_cell",
]

CELL_KEYS = ("method", "variant", "fraction", "seed", "test_accuracy")  # a cached cell has these
LOCK_KINDS = ("roar-cell", "tensor")  # the cache locks a ROAR cell or a ranks cell takes


@dataclass(frozen=True)
class RoarData:
    """What every retrained cell of one ROAR run shares (sent once to each Ray node)."""

    train_x: Tensor  # (N, C, H, W) normalised
    train_y: Tensor  # (N,)
    test_x: Tensor
    test_y: Tensor
    fill: Tensor  # (C,) per-channel training mean
    split: tuple[Tensor, Tensor] | None  # (fit, validation) indices of the training images
    network: Callable[[], nn.Module]  # builds the retrained network
    network_name: str
    replacement: str  # "mean" or ROAD's imputation
    seed: int  # the ROAR seed (imputation noise)
    device: str | None
    progress: bool


@dataclass(frozen=True)
class RoarCellSpec:
    """One retrained cell: what it retrains on and where its record lives."""

    name: str  # the ranking (or BASELINE)
    variant: str  # "roar", "mask_only" or "longer"
    fraction: float
    seed: int  # the training seed
    path: str | None  # the cache file (None: no cache)
    setup: str  # setup hash
    recipe_hash: str
    recipe: TrainConfig  # with this cell's seed (and epochs for "longer")


@dataclass(frozen=True)
class RanksSpec:
    """The maps of one ranking, turned into pixel ranks (:func:`load_or_compute_ranks`)."""

    label: str
    method: MethodLike
    options: dict[str, Any]
    target: Tensor
    cache: str | None
    setup: str
    batch_size: int
    seed: int
    progress: bool
    device: str | torch.device | None

    def path(self) -> Path | None:
        if self.cache is None:
            return None
        return Path(self.cache) / "maps" / self.setup / f"{self.label}.pt"


def ranks_cell(model: nn.Module, images: Tensor, spec: RanksSpec) -> Tensor:
    """(N, H*W) pixel ranks of one ranking, from the cache or computed and stored there."""
    cache = None if spec.cache is None else Path(spec.cache)
    model = on_device(model, spec.device)  # a CPU copy sent to a GPU worker: moved there
    return load_or_compute_ranks(model, images, spec.label, spec.method, spec.options,
                                 spec.target, cache, spec.setup, spec.batch_size, spec.seed,
                                 spec.progress).long()  # fmt: skip


def cached_ranks(spec: RanksSpec, shape: tuple[int, int]) -> Tensor | None:
    """The ranks a ranks cell stored (the driver's read; None without a readable file)."""
    path = spec.path()
    rank = None if path is None else read_tensor(path, shape=shape, check=check_ranks)
    return None if rank is None else rank.long()


def cached_record(spec: RoarCellSpec) -> dict[str, Any] | None:
    """The record a cell stored (the driver's read; None without a readable file)."""
    return None if spec.path is None else read_json(spec.path, CELL_KEYS)


def cell_images(data: RoarData, rank: Tensor | None, spec: RoarCellSpec) -> tuple[Tensor, Tensor]:
    """A cell's training and test images: unmodified (references), the removal masks alone
    (mask-only control) or the images with the top pixels replaced."""
    if spec.name == BASELINE or rank is None:
        return data.train_x, data.test_x
    n = len(data.train_x)
    channels, size = data.train_x.shape[1], tuple(data.train_x.shape[2:])
    if spec.variant == "mask_only":
        masks = removal_mask_images(rank, spec.fraction, channels, size)
        return masks[:n], masks[n:]
    removed = removal_masks(rank, [spec.fraction], "morf", size)[0].unsqueeze(1)
    all_x = torch.cat([data.train_x, data.test_x])
    x_all = replace_removed(all_x, removed, data.fill, data.replacement, data.seed)
    return x_all[:n], x_all[n:]


def roar_cell(data: RoarData, rank: Tensor | None, spec: RoarCellSpec) -> dict[str, Any]:
    """One retrained cell's record: read from the cache, or retrained and stored there."""
    path = None if spec.path is None else Path(spec.path)
    record = None if path is None else load_json_cell(path, CELL_KEYS, kind="roar-cell")
    if record is not None:
        return record
    x_tr, x_te = cell_images(data, rank, spec)
    trained, correct = retrain(x_tr, data.train_y, x_te, data.test_y, data.split, spec.recipe,
                               data.network, data.device, data.progress)  # fmt: skip
    record = {
        "method": spec.name,
        "variant": spec.variant,
        "fraction": spec.fraction,
        "seed": spec.seed,
        "recipe_hash": spec.recipe_hash,
        "setup_hash": spec.setup,
        "recipe": dataclasses.asdict(spec.recipe),
        "network": data.network_name,
        "test_accuracy": trained.test_accuracy,
        "validation_accuracy": trained.validation_accuracy,
        "best_epoch": trained.best_epoch,
        "correct": "".join("1" if c else "0" for c in correct.tolist()),
        "history": [dataclasses.asdict(h) for h in trained.history],
        "wall_time_s": trained.wall_time_s,
    }
    if path is not None:
        store_json_cell(path, record, kind="roar-cell")  # atomic; releases the lock
    return record


def retrain(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    split: tuple[Tensor, Tensor] | None,
    recipe: TrainConfig,
    network: Callable[[], nn.Module],
    device: str | torch.device | None,
    progress: bool,
) -> tuple[Any, Tensor]:
    """Train a new network on one cell's images (the ``split`` (fit, validation) indices pick
    the best-validation checkpoint; None: the last epoch); returns the training result and
    which test images it classifies correctly, (N,) bool."""
    validation = None
    if split is not None:
        fit, held = split
        validation = (x_train[held], y_train[held])
        x_train, y_train = x_train[fit], y_train[fit]
    trained = train_model((x_train, y_train), (x_test, y_test), recipe, device=device,
                          progress=progress, model_fn=network, validation=validation)  # fmt: skip
    return trained, correct_of(trained.model, x_test, y_test)


@torch.no_grad()
def correct_of(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1024) -> Tensor:
    """(N,) bool: is each test image classified correctly by the (eval-mode) model."""
    dev = next(model.parameters()).device
    out = [
        model(images[i : i + batch_size].to(dev)).argmax(1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) == labels
