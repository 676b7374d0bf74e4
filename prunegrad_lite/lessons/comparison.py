"""Lesson 4, comparing methods: every registered method's maps for the same inputs and targets.

Example
-------
>>> run = compute_maps(model, x, ["gradient", "integrated_gradients", "prunegrad"])
>>> fig = plot_method_grid(images, run.maps)
>>> print(format_timings(run))
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.base import TargetLike, check_inputs, check_model, resolve_target
from prunegrad_lite.attribution.registry import METHODS, get_method
from prunegrad_lite.maps import clip_percentile

__all__ = ["MethodMaps", "clip_maps", "compute_maps", "describe_methods", "format_timings"]


@dataclass
class MethodMaps:
    """Maps of several methods for the same inputs and targets, with the time each took."""

    maps: dict[str, Tensor]  # method -> (N, C, H, W), in the order asked for
    seconds: dict[str, float]  # method -> wall time of its attribute call
    target: Tensor  # (N,) the classes every method explained


def compute_maps(
    model: nn.Module,
    inputs: Tensor,
    methods: Sequence[str],
    options: Mapping[str, dict] | None = None,
    target: TargetLike = None,
) -> MethodMaps:
    """Run each method of the registry (:data:`~prunegrad_lite.METHODS`) on the same inputs.

    ``target=None`` resolves the predicted class once, so every method explains the same class.
    ``options`` maps a method name to its constructor options, e.g.
    ``{"integrated_gradients": {"steps": 16}, "prunegrad": {"sparsity": 0.9}}``; methods not
    named there use their documented defaults.

    Example
    -------
    >>> run = compute_maps(model, x, ["gradient", "prunegrad"], {"prunegrad": {"sparsity": 0.9}})
    >>> run.maps["prunegrad"].shape == x.shape
    True
    """
    options = dict(options or {})
    unknown = set(options) - set(methods)
    if unknown:
        raise ValueError(f"options given for methods not asked for: {sorted(unknown)}")
    check_model(model)
    x = check_inputs(model, inputs)
    with torch.no_grad():
        t = resolve_target(target, model(x))
    maps, seconds = {}, {}
    for name in methods:
        method = get_method(name, model, **options.get(name, {}))
        start = time.perf_counter()
        maps[name] = method.attribute(inputs, t).detach()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        seconds[name] = time.perf_counter() - start
    return MethodMaps(maps, seconds, t)


def format_timings(run: MethodMaps) -> str:
    """A plain-text table: method, seconds for the batch, milliseconds per image."""
    n = len(run.target)
    rows = [f"{'method':<22} {'seconds':>8} {'ms / image':>11}"]
    rows += [f"{k:<22} {s:>8.2f} {1000 * s / n:>11.1f}" for k, s in run.seconds.items()]
    return "\n".join(rows)


def describe_methods(names: Sequence[str] | None = None) -> str:
    """One line per registered method: its name and the first line of its docstring.

    The PruneGrad entries of the registry are built on first use, so they are described by
    PruneGrad's own summary and the options they fix.

    Example
    -------
    >>> print(describe_methods(["gradient", "prunegrad_random"]))
    """
    from prunegrad_lite.attribution.prunegrad import PruneGrad

    rows = []
    for name in METHODS if names is None else names:
        cls = METHODS[name]
        doc = cls.__dict__.get("__doc__")
        line = (doc or PruneGrad.__doc__).strip().splitlines()[0]
        fixed = getattr(cls, "fixed", {}) if not doc else {}  # a lazily built PruneGrad entry
        rows.append(f"{name:<22} {line}" + (f" With {fixed} fixed." if fixed else ""))
    return "\n".join(rows)


def clip_maps(maps: Mapping[Hashable, Tensor], q: float = 99.0) -> dict[Hashable, Tensor]:
    """Each map clipped to ``[-p, p]``, ``p`` its ``q``-th percentile of ``|map|``, for display.

    Gradient maps have a few extreme pixels; scaled by their maximum the rest turns white.
    Clipping (as the attribution papers' figures do) keeps signs and shows the structure.
    Values are (N, C, H, W) batches, clipped per sample, or single (C, H, W) maps; keys (method
    names, sparsities) are kept. Only for drawing: rank pixels with the raw maps.

    Example
    -------
    >>> fig = plot_method_grid(images, clip_maps(run.maps))
    """
    out = {}
    for key, m in maps.items():
        out[key] = clip_percentile(m, q) if m.ndim == 4 else clip_percentile(m[None], q)[0]
    return out
