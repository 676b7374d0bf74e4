"""Training: the one recipe (:mod:`.recipe`) that trains the shipped Fashion-MNIST model and
retrains for ROAR, and what a trained checkpoint records (:mod:`.record`).

Checkpoints themselves are written and read by :mod:`prunegrad_lite.io` (atomic, with
``torch.load(weights_only=True)``); their names are re-exported here.

Example
-------
>>> images, labels = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
>>> result = train_model((images, labels), config=TrainConfig(epochs=1), progress=False)
>>> len(result.history)
1
"""

from __future__ import annotations

from prunegrad_lite.io import Checkpoint, atomic_write, load_checkpoint, save_checkpoint
from prunegrad_lite.training.recipe import (
    EpochStats,
    TrainConfig,
    TrainResult,
    augment_batch,
    evaluate,
    tensor_pair,
    train_model,
)
from prunegrad_lite.training.record import checkpoint_meta, save_with_record

__all__ = [
    "Checkpoint",
    "EpochStats",
    "TrainConfig",
    "TrainResult",
    "atomic_write",
    "augment_batch",
    "checkpoint_meta",
    "evaluate",
    "load_checkpoint",
    "save_checkpoint",
    "save_with_record",
    "tensor_pair",
    "train_model",
]
