"""What a trained model's checkpoint records: the provenance saved beside its weights.

:func:`checkpoint_meta` gathers the architecture, the data, the recipe, the history and
accuracy, and the machine and versions a model was trained with (``data/fashion_resnet.json``
is one); :func:`save_with_record` saves the checkpoint (:func:`~prunegrad_lite.io.save_checkpoint`)
and that record, with the checkpoint's sha256, beside it as ``.json``.

Example
-------
>>> meta = checkpoint_meta(result, train, dataset="fashion_mnist", full=False, num_test=2000,
...                        accuracy={"test_subset": 0.9}, load_start=0.5, device="cpu",
...                        command="prunegrad-lite train")
>>> save_with_record(result.model, "runs/model.pt", meta)
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunegrad_lite.io import save_checkpoint, sha256_file, write_text
from prunegrad_lite.runtime import __version__
from prunegrad_lite.training.recipe import TrainResult

__all__ = ["checkpoint_meta", "save_with_record"]

_THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")  # recorded with a run


def _floats(value: Any) -> list[float]:
    return [float(v) for v in torch.as_tensor(value, dtype=torch.float64).flatten().tolist()]


def checkpoint_meta(
    result: TrainResult,
    train: Any,
    *,
    dataset: str,
    full: bool,
    num_test: int,
    accuracy: dict[str, float | None],
    load_start: float,
    device: torch.device,
    command: str,
) -> dict[str, Any]:
    """The provenance saved with a trained FashionResNet: architecture, data, recipe, history,
    accuracy, and the machine and versions it was trained with (``data/fashion_resnet.json``).

    ``train``: the training :class:`~prunegrad_lite.data.LabeledData` (channels, normalisation,
    class names); ``load_start``: the 1-minute load average when training began (other
    processes sharing the CPU); ``command``: the command line that trained it.
    """
    config = result.config
    return {
        "architecture": {
            "class": "FashionResNet",
            "in_channels": int(train.images.shape[1]),
            "num_classes": config.num_classes,
            "width": config.width,
            "parameters": sum(p.numel() for p in result.model.parameters()),
        },
        "dataset": dataset,
        "full_dataset": bool(full),
        "num_train": result.num_train,
        "num_test": num_test,
        "normalisation": {"mean": _floats(train.mean), "std": _floats(train.std)},
        "classes": list(train.classes),
        "config": dataclasses.asdict(config),
        "history": [dataclasses.asdict(h) for h in result.history],
        "accuracy": accuracy,
        "wall_time_s": round(result.wall_time_s, 1),
        "load_average_1min": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "environment": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
        "torch_version": torch.__version__,
        "prunegrad_lite_version": __version__,
        "python_version": platform.python_version(),
        "command": command,
    }


def save_with_record(
    model: nn.Module, path: str | os.PathLike, meta: dict[str, Any]
) -> tuple[Path, Path, dict[str, Any]]:
    """Save the checkpoint (:func:`save_checkpoint`) and, beside it as ``.json``, a record of
    its file name, sha256 and size followed by ``meta``; return both paths and the record."""
    out = save_checkpoint(model, path, meta)
    record = {"checkpoint": out.name, "sha256": sha256_file(out), "bytes": out.stat().st_size}
    record |= meta
    record_path = write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return out, record_path, record
