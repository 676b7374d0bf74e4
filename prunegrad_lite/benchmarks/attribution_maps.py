"""Attribution maps for a whole image set, batch by batch: what every benchmark starts from.

* :func:`check_methods` turns the user's method names into a checked list (unknown names raise
  a ``ValueError`` that lists the known ones).
* :func:`on_device` returns the model on the requested device, **copying** it when it lives
  elsewhere, so the caller's model is never moved.
* :func:`compute_maps` runs one method over N images in batches, for the predicted class
  (the spec's default target), with a progress bar, and returns the signed maps on the CPU.

The random control gets a seeded ``torch.Generator`` (not an int seed) unless the caller passes
a ``seed`` option: with an int, :class:`~prunegrad_lite.RandomMap` would give every batch the
same values, so images in different batches would share one "random" ranking.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from prunegrad_lite.attribution.base import TargetLike, check_model
from prunegrad_lite.attribution.registry import METHODS, get_method
from prunegrad_lite.device import model_device, resolve_device

__all__ = [
    "check_methods",
    "compute_maps",
    "describe_options",
    "on_device",
    "options_for",
    "predict",
]

MethodOptions = Mapping[str, Mapping[str, Any]]


def check_methods(methods: str | Sequence[str]) -> list[str]:
    """Method names as a list without repeats; ``ValueError`` for an unknown or empty list.

    Example
    -------
    >>> check_methods(["gradient", "prunegrad"])
    ['gradient', 'prunegrad']
    """
    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise ValueError(f"give at least one attribution method; known: {', '.join(METHODS)}")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(
            f"unknown attribution method(s) {', '.join(map(repr, unknown))}; "
            f"known methods: {', '.join(METHODS)}"
        )
    return list(dict.fromkeys(names))


def options_for(options: MethodOptions | None, method: str) -> dict[str, Any]:
    """The keyword options for ``method`` from a ``{method: {option: value}}`` mapping."""
    if options is None:
        return {}
    unknown = [m for m in options if m not in METHODS]
    if unknown:
        raise ValueError(f"method_options names unknown method(s) {unknown}")
    return dict(options.get(method, {}))


def describe_options(options: MethodOptions | None) -> dict[str, Any]:
    """Method options as JSON-able values for a results file (other objects become their repr)."""
    plain = (int, float, str, bool, type(None))
    return {
        method: {k: v if isinstance(v, plain) else repr(v) for k, v in opts.items()}
        for method, opts in (options or {}).items()
    }


def on_device(model: nn.Module, device: str | torch.device | None) -> nn.Module:
    """``model`` itself when it is on ``device`` (None: CUDA when available, else CPU), else a
    deep copy moved there: benchmarks never move the caller's model. It must be in eval mode."""
    check_model(model)
    dev = resolve_device(device)
    here = model_device(model)
    if here.type == dev.type and (dev.index is None or here.index == dev.index):
        return model
    return copy.deepcopy(model).to(dev).eval()


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Softmax probabilities (N, K) of ``model`` on ``images`` (N, C, H, W), on the CPU."""
    dev = model_device(model)
    out = [
        model(images[i : i + batch_size].to(dev)).softmax(-1).float().cpu()
        for i in range(0, len(images), batch_size)  # batches, not single images
    ]
    return torch.cat(out)


def compute_maps(
    model: nn.Module,
    images: Tensor,
    method: str,
    *,
    options: Mapping[str, Any] | None = None,
    target: TargetLike = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
) -> Tensor:
    """Signed attribution maps (N, C, H, W) of ``method`` for every image, on the CPU.

    Parameters
    ----------
    model : in eval mode, on the device the maps are computed on (see :func:`on_device`).
    images : (N, C, H, W) normalised inputs, on any device (moved batch by batch).
    method : a name of :data:`~prunegrad_lite.METHODS`.
    options : keyword options of the method's constructor (default: its documented defaults).
    target : None (default: the class the model predicts), an int, or one class per image.
    batch_size : images per ``attribute`` call; default 64.
    seed : seeds the random control's generator (only used for ``"random"`` without a
        ``seed`` option); default 0.
    progress : show a tqdm progress bar.

    Example
    -------
    >>> maps = compute_maps(model, test.images[:256], "prunegrad", options={"sparsity": 0.9})
    >>> maps.shape                                             # (256, 1, 28, 28)
    """
    (name,) = check_methods([method])
    opts = dict(options or {})
    if name == "random" and "seed" not in opts:
        opts["seed"] = torch.Generator().manual_seed(seed)  # consumed: every image differs
    explainer = get_method(name, model, **opts)
    dev = model_device(model)
    targets = None if target is None or isinstance(target, int) else torch.as_tensor(target)
    out = torch.empty(images.shape, dtype=torch.float32)  # (N, C, H, W) on the CPU
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=desc or f"maps: {name}", disable=not progress, leave=False):
        stop = start + batch_size
        t = targets[start:stop] if targets is not None else target
        out[start:stop] = explainer.attribute(images[start:stop].to(dev), t).float().cpu()
    return out
