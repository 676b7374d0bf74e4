"""Attribution maps for a whole image set, batch by batch: what every benchmark starts from.

* :func:`check_methods` turns the user's method names into a checked list (unknown names raise
  a ``ValueError`` that lists the known ones).
* :func:`on_device` returns the model on the requested device, **copying** it when it lives
  elsewhere, so the caller's model is never moved.
* :func:`maps_for_images` runs one method over N images in batches, for the predicted class
  (the spec's default target), with a progress bar, and returns the signed maps on the CPU.
* :func:`benchmark_inputs` is what every benchmark checks first: the methods, their options, the
  image batch, and the model on the requested device.

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

from prunegrad_lite.attribution.base import Attribution, TargetLike, check_model
from prunegrad_lite.attribution.controls import RandomMap
from prunegrad_lite.attribution.registry import METHODS
from prunegrad_lite.runtime import model_device, resolve_device

__all__ = [
    "benchmark_inputs",
    "check_methods",
    "check_options",
    "describe_options",
    "maps_for_images",
    "on_device",
    "options_for",
    "predict",
]

MethodOptions = Mapping[str, Mapping[str, Any]]
MethodClass = type[Attribution]
MethodLike = str | MethodClass


def check_methods(methods: MethodLike | Sequence[MethodLike]) -> dict[str, MethodClass]:
    """The methods as ``{name: class}``, in order, without repeats.

    Each entry is a name of :data:`~prunegrad_lite.METHODS` or an
    :class:`~prunegrad_lite.Attribution` subclass (its ``name`` attribute names it; this is how
    tests and users benchmark a method of their own). Unknown names, an empty list or two
    classes with one name raise a ``ValueError``.

    Example
    -------
    >>> list(check_methods(["gradient", "prunegrad"]))
    ['gradient', 'prunegrad']
    """
    items = [methods] if isinstance(methods, (str, type)) else list(methods)
    if not items:
        raise ValueError(f"give at least one attribution method; known: {', '.join(METHODS)}")
    out: dict[str, MethodClass] = {}
    for item in items:
        if isinstance(item, type) and issubclass(item, Attribution):
            name, cls = item.name, item
        elif isinstance(item, str) and item in METHODS:
            name, cls = item, METHODS[item]
        else:
            raise ValueError(
                f"unknown attribution method {item!r}; known methods: {', '.join(METHODS)} "
                "(or pass an Attribution subclass)"
            )
        if out.get(name, cls) is not cls:
            raise ValueError(f"two different methods are named {name!r}")
        out[name] = cls
    return out


def options_for(options: MethodOptions | None, method: str) -> dict[str, Any]:
    """The keyword options for ``method`` from a ``{method: {option: value}}`` mapping."""
    return {} if options is None else dict(options.get(method, {}))


def check_options(options: MethodOptions | None, names: Sequence[str]) -> None:
    """``ValueError`` when ``options`` names a method that is not being run (a likely typo)."""
    unknown = [m for m in (options or {}) if m not in names]
    if unknown:
        raise ValueError(f"method_options names method(s) {unknown} that are not run: {names}")


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


def benchmark_inputs(
    model: nn.Module,
    images: Tensor,
    methods: MethodLike | Sequence[MethodLike],
    method_options: MethodOptions | None,
    device: str | torch.device | None,
) -> tuple[nn.Module, Tensor, dict[str, MethodClass]]:
    """What every benchmark checks before any work, in this order: the methods
    (:func:`check_methods`), that ``method_options`` names only them, that ``images`` is a
    non-empty (N, C, H, W) batch, and the model (:func:`on_device`). Returns the model on
    ``device`` (a copy when it had to move), the images as float32 on the CPU, and the methods
    as ``{name: class}``."""
    classes = check_methods(methods)
    check_options(method_options, list(classes))
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty (N, C, H, W) batch, got {tuple(images.shape)}"
        )
    return on_device(model, device), images.detach().float().cpu(), classes


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Softmax probabilities (N, K) of ``model`` on ``images`` (N, C, H, W), on the CPU."""
    dev = model_device(model)
    out = [
        model(images[i : i + batch_size].to(dev)).softmax(-1).float().cpu()
        for i in range(0, len(images), batch_size)  # batches, not single images
    ]
    return torch.cat(out)


def maps_for_images(
    model: nn.Module,
    images: Tensor,
    method: MethodLike,
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
    method : a name of :data:`~prunegrad_lite.METHODS` or an ``Attribution`` subclass.
    options : keyword options of the method's constructor (default: its documented defaults).
    target : None (default: the class the model predicts), an int, or one class per image.
    batch_size : images per ``attribute`` call; default 64.
    seed : seeds the random control's generator (only used for ``"random"`` without a
        ``seed`` option); default 0.
    progress : show a tqdm progress bar.

    Example
    -------
    >>> maps = maps_for_images(model, test.images[:256], "prunegrad", options={"sparsity": 0.9})
    >>> maps.shape                                             # (256, 1, 28, 28)
    """
    ((name, cls),) = check_methods([method]).items()
    opts = dict(options or {})
    if issubclass(cls, RandomMap) and "seed" not in opts:
        opts["seed"] = torch.Generator().manual_seed(seed)  # consumed: every image differs
    explainer = cls(model, **opts)
    dev = model_device(model)
    targets = None if target is None or isinstance(target, int) else torch.as_tensor(target)
    out = torch.empty(images.shape, dtype=torch.float32)  # (N, C, H, W) on the CPU
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=desc or f"maps: {name}", disable=not progress, leave=False):
        stop = start + batch_size
        t = targets[start:stop] if targets is not None else target
        out[start:stop] = explainer.attribute(images[start:stop].to(dev), t).float().cpu()
    return out


#: the old name of :func:`maps_for_images`, kept while ``benchmarks/roar.py`` and the scripts in
#: ``perf/`` still use it (the course has its own, unrelated ``compute_maps``)
compute_maps = maps_for_images
