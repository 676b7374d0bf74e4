"""The one training recipe: trains the shipped Fashion-MNIST model, and retrains for ROAR.

Data are in-memory tensors (already normalised); batches are sliced from them and augmented as whole
batches (random crop with padding, horizontal flip), so nothing loops over samples in Python.

Example
-------
>>> images, labels = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
>>> result = train_model((images, labels), config=TrainConfig(epochs=1), progress=False)
>>> len(result.history)
1
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from prunegrad_lite.models import FashionResNet
from prunegrad_lite.runtime import model_device, resolve_device

__all__ = [
    "EpochStats",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "evaluate",
    "tensor_pair",
    "train_model",
]


@dataclass
class TrainConfig:
    """The training recipe. The defaults train the shipped FashionResNet on the full 60k
    Fashion-MNIST training set to 91.2% test accuracy (the record is data/fashion_resnet.json):
    about 70 s an epoch on 2 idle CPU cores, 1407 steps in all."""

    epochs: int = 4  # full passes over the training set
    batch_size: int = 128  # samples per step; a last batch of 1 is dropped (BatchNorm needs 2)
    lr: float = 0.1  # peak learning rate (OneCycle's max_lr; the constant rate otherwise)
    weight_decay: float = 5e-4  # L2 on all parameters (decoupled for AdamW)
    optimizer: str = "sgd"  # "sgd" (momentum 0.9, Nesterov), "adam" or "adamw"
    schedule: str = "onecycle"  # "onecycle" (warm up, then cosine down), "cosine" or "constant"
    warmup: float = 0.2  # OneCycle: fraction of all steps spent warming up from lr / 25
    augment: bool = True  # augment each training batch (crop and flip as set below)
    crop_padding: int = 0  # random crop: reflect-pad, crop back (0: none; 2 cost 1-4% here)
    hflip: bool = True  # random horizontal flip with probability 1/2
    width: int = 16  # FashionResNet channels of the first stage (then 2x, 4x)
    num_classes: int = 10  # output classes of the default model
    seed: int = 0  # seeds model init, shuffling and augmentation (through torch.Generator)
    num_workers: int = 0  # batches are sliced from in-memory tensors: no loader workers (must be 0)

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(
                f"schedule must be 'onecycle', 'cosine' or 'constant', got {self.schedule!r}"
            )
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        if self.num_workers != 0:
            raise ValueError("num_workers must be 0: training data are in-memory tensors")


@dataclass
class EpochStats:
    epoch: int  # 1-based
    loss: float  # mean training cross-entropy over the epoch (train mode, augmented batches)
    train_accuracy: float  # on the augmented training batches, as seen during the epoch
    test_accuracy: float | None  # eval mode, after the epoch; None without test data (and,
    # with a validation set, for every epoch: the test set is then evaluated once, at the end)
    seconds: float  # wall time of the epoch including its evaluation
    validation_accuracy: float | None = None  # eval mode, after the epoch; None without one


@dataclass
class TrainResult:
    model: nn.Module  # in eval() mode
    history: list[EpochStats]
    wall_time_s: float
    config: TrainConfig
    num_train: int = 0
    best_epoch: int | None = None  # with a validation set: the epoch whose weights were kept
    final_test_accuracy: float | None = None  # with a validation set: the kept weights' test acc

    @property
    def test_accuracy(self) -> float | None:
        """Test accuracy of the returned model: after the last epoch, or with a validation set
        of the best-validation checkpoint (None without test data)."""
        if self.best_epoch is not None:
            return self.final_test_accuracy
        return self.history[-1].test_accuracy

    @property
    def validation_accuracy(self) -> float | None:
        """The kept checkpoint's validation accuracy (None without a validation set)."""
        if self.best_epoch is None:
            return None
        return self.history[self.best_epoch - 1].validation_accuracy

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record (no model)."""
        return {
            "config": dataclasses.asdict(self.config),
            "history": [dataclasses.asdict(h) for h in self.history],
            "wall_time_s": self.wall_time_s,
            "num_train": self.num_train,
            "test_accuracy": self.test_accuracy,
            "best_epoch": self.best_epoch,
            "validation_accuracy": self.validation_accuracy,
        }


TensorPair = tuple[torch.Tensor, torch.Tensor]


def tensor_pair(data: TensorDataset | TensorPair | Any, what: str) -> TensorPair:
    """(images, labels) from a TensorDataset, a pair, or anything with ``.images``/``.labels``."""
    if isinstance(data, TensorDataset):
        images, labels = data.tensors[:2]
    elif hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
    else:
        raise ValueError(
            f"{what} must be a TensorDataset, an (images, labels) pair or have .images and .labels"
        )
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{what}: expected images (N, C, H, W) and labels (N,), "
            f"got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    return images.float(), labels.long()


def augment_batch(
    images: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Random crop (reflect-pad by ``padding``, crop back) and random horizontal flip, per sample,
    for a whole batch at once. Random numbers come from ``generator`` (a CPU generator).

    Example
    -------
    >>> augment_batch(torch.zeros(8, 1, 28, 28), 2, True, torch.Generator().manual_seed(0)).shape
    torch.Size([8, 1, 28, 28])
    """
    n, _, h, w = images.shape  # (N, C, H, W)
    dev = images.device
    if padding > 0:
        padded = F.pad(images, (padding,) * 4, mode="reflect")  # (N, C, H+2p, W+2p)
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)  # (N,)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)  # (N,)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (N, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (N, 1, 1, W)
        batch = torch.arange(n, device=dev)[:, None, None, None]  # (N, 1, 1, 1)
        channel = torch.arange(images.shape[1], device=dev)[None, :, None, None]  # (1, C, 1, 1)
        images = padded[batch, channel, rows, cols]  # (N, C, H, W)
    if hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(dev)[:, None, None, None]  # (N,1,1,1)
        images = torch.where(flip, images.flip(-1), images)
    return images


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> float:
    """Top-1 accuracy (0..1) of ``model`` in eval mode; the model's train/eval mode is restored.

    ``device`` defaults to the model's device; inputs are moved there batch by batch.

    Example
    -------
    >>> evaluate(model, test.images, test.labels)
    0.92
    """
    dev = model_device(model) if device is None else resolve_device(device)
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(dev)  # (B, C, H, W)
            y = labels[start : start + batch_size].to(dev)  # (B,)
            correct += int((model(x).argmax(1) == y).sum())
    finally:
        model.train(was_training)
    return correct / max(len(images), 1)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params, wd = model.parameters(), config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=wd)


def _scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=config.warmup
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


def train_model(
    train: TensorDataset | TensorPair | Any,
    test: TensorDataset | TensorPair | Any | None = None,
    config: TrainConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    model_fn: Callable[[], nn.Module] | None = None,
    validation: TensorDataset | TensorPair | Any | None = None,
) -> TrainResult:
    """Train a model from scratch with the recipe in ``config``; return it in eval mode.

    Parameters
    ----------
    train, test : TensorDataset, ``(images, labels)`` or an object with ``.images``/``.labels``;
        images (N, C, H, W) already normalised, labels (N,) int64. ``test`` is evaluated after
        every epoch.
    config : the recipe (default ``TrainConfig()``).
    device : as :func:`~prunegrad_lite.runtime.resolve_device` (None: CUDA when available).
    progress : show tqdm progress bars.
    model_fn : builds the model (no arguments); default ``FashionResNet(C, num_classes, width)``.
    validation : like ``train``, held out from it (never the test set). When given, it is
        evaluated after every epoch and the weights of the epoch with the best validation
        accuracy (the earliest on ties) are the ones returned; ``test`` is then evaluated once,
        on those weights (``result.test_accuracy``, ``result.best_epoch``).

    Seeding: the model is built inside ``torch.random.fork_rng`` with the CPU RNG seeded by
    ``config.seed``, so initialisation is reproducible and the caller's global RNG is left as it
    was; shuffling and augmentation draw from a ``torch.Generator`` seeded by ``config.seed``.
    Layers that draw random numbers while training (dropout) use the global RNG; FashionResNet has
    none. Same seed, same device and thread count: identical weights.

    Example
    -------
    >>> result = train_model(load_dataset("fashion_mnist"), load_dataset("fashion_mnist", "test"))
    >>> result.test_accuracy
    0.91
    """
    config = config or TrainConfig()
    dev = resolve_device(device)
    images, labels = tensor_pair(train, "train")
    test_tensors = None if test is None else tensor_pair(test, "test")
    val_tensors = None if validation is None else tensor_pair(validation, "validation")
    if model_fn is None:

        def model_fn() -> nn.Module:
            return FashionResNet(images.shape[1], config.num_classes, config.width)

    with torch.random.fork_rng(devices=[]):  # restores the global CPU RNG afterwards
        torch.random.default_generator.manual_seed(config.seed)
        model = model_fn()
    # No channels_last: it is ~1.4x faster on CPU, but in torch 2.14.1 the CPU backward of a
    # channels_last 1x1 stride-2 conv with 4 input channels (the first shortcut of width=4)
    # corrupts the heap.
    model = model.to(dev)
    generator = torch.Generator().manual_seed(config.seed)  # shuffling and augmentation
    images, labels = images.to(dev), labels.to(dev)  # (N, C, H, W), (N,)

    n = len(images)
    starts = [s for s in range(0, n, config.batch_size) if min(n - s, config.batch_size) >= 2]
    if not starts:
        raise ValueError(f"need at least 2 training samples, got {n}")
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config, config.epochs * len(starts))

    history: list[EpochStats] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None  # (val acc, epoch, weights)
    t_start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator).to(dev)  # (N,)
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(starts, desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False)
        for start in bar:
            index = order[start : start + config.batch_size]  # (B,)
            x, y = images[index], labels[index]  # (B, C, H, W), (B,)
            if config.augment:
                x = augment_batch(x, config.crop_padding, config.hflip, generator)
            logits = model(x)  # (B, classes)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        test_acc = val_acc = None
        if val_tensors is not None:
            val_acc = evaluate(model, *val_tensors, batch_size=512, device=dev)
            if best is None or val_acc > best[0]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (val_acc, epoch, state)
        elif test_tensors is not None:
            test_acc = evaluate(model, *test_tensors, batch_size=512, device=dev)
        history.append(
            EpochStats(
                epoch,
                loss_sum / seen,
                correct / seen,
                test_acc,
                time.perf_counter() - t_epoch,
                val_acc,
            )
        )
        if progress:
            h = history[-1]
            test_text = "" if test_acc is None else f", test acc {test_acc:.4f}"
            test_text += "" if val_acc is None else f", validation acc {val_acc:.4f}"
            tqdm.write(
                f"epoch {epoch}/{config.epochs}: loss {h.loss:.4f}, "
                f"train acc {h.train_accuracy:.4f}{test_text} ({h.seconds:.0f} s)"
            )
    best_epoch = final_test = None
    if best is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
        if test_tensors is not None:
            final_test = evaluate(model, *test_tensors, batch_size=512, device=dev)
    model.eval()
    wall = time.perf_counter() - t_start
    return TrainResult(
        model=model,
        history=history,
        wall_time_s=wall,
        config=config,
        num_train=n,
        best_epoch=best_epoch,
        final_test_accuracy=final_test,
    )
