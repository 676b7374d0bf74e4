"""Every attribution method by name: ``METHODS[name](model, **options).attribute(x, target)``.

======================== ============================================================
name                     method
======================== ============================================================
``gradient``             :class:`Gradient` (signed dS/dx)
``grad_x_input``         :class:`GradientXInput`
``integrated_gradients`` :class:`IntegratedGradients` (zero baseline, 50 steps)
``smoothgrad``           :class:`SmoothGrad` (25 samples, noise 0.15 of the range)
``smoothgrad_sq``        :class:`SmoothGradSquared` (mean of squared noisy gradients)
``guided_backprop``      :class:`GuidedBackprop`
``gradcam``              :class:`GradCAM` (last ReLU feature map)
``fullgrad``             :class:`FullGrad`
``random``               :class:`RandomMap` (control)
``edge``                 :class:`EdgeMap` (control, model-independent)
``prunegrad``            ``PruneGrad`` (Taylor scores, global threshold)
``prunegrad_random``     ``PruneGrad(scoring="random")``: random pruning control
``pruneint``             ``PruneGrad(scoring="integrated_gradients")``: PruneInt
``prunegrad_layer``      ``PruneGrad(threshold="layer")``: per-layer threshold
======================== ============================================================

The PruneGrad entries import :mod:`prunegrad_lite.attribution.prunegrad` only when they are
called, and build (once) a real subclass of ``PruneGrad`` with the variant's option fixed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from prunegrad_lite.attribution.base import Attribution, TargetLike
from prunegrad_lite.attribution.controls import EdgeMap, RandomMap
from prunegrad_lite.attribution.fullgrad import FullGrad
from prunegrad_lite.attribution.gradcam import GradCAM
from prunegrad_lite.attribution.gradients import (
    Gradient,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
)
from prunegrad_lite.attribution.guided_backprop import GuidedBackprop

__all__ = ["METHODS", "SmoothGradSquared", "attribute", "get_method"]


class SmoothGradSquared(SmoothGrad):
    """SmoothGrad-Squared: the mean of *squared* noisy gradients (non-negative).

    Same defaults as :class:`SmoothGrad` (25 samples, noise std 0.15 of each input's range,
    seed 0) with ``squared=True``.

    Example
    -------
    >>> maps = SmoothGradSquared(model, samples=25, seed=0).attribute(x)   # (N, C, H, W) >= 0
    """

    name = "smoothgrad_sq"

    def __init__(self, model: nn.Module, **options: Any) -> None:
        if options.pop("squared", True) is not True:
            raise ValueError("smoothgrad_sq is SmoothGrad with squared=True; use 'smoothgrad'")
        super().__init__(model, squared=True, **options)


class _LazyPruneGrad(Attribution):
    """A registry entry for ``PruneGrad`` with some options fixed, imported on first use.

    Calling the entry returns an instance of a subclass of ``PruneGrad`` (built once) whose
    ``name`` is the entry's name. Passing a fixed option with another value is an error.
    """

    name = "prunegrad"
    fixed: ClassVar[dict[str, Any]] = {}
    _built: ClassVar[dict[str, type]] = {}

    def __new__(cls, model: nn.Module, **options: Any) -> Attribution:  # type: ignore[misc]
        for key, value in cls.fixed.items():
            if options.get(key, value) != value:
                raise ValueError(
                    f"{cls.name!r} fixes {key}={value!r}; got {key}={options[key]!r}: "
                    f"use 'prunegrad' to choose {key} freely"
                )
        return cls._variant()(model, **{**options, **cls.fixed})

    @classmethod
    def _variant(cls) -> type:
        if cls.name not in cls._built:
            from prunegrad_lite.attribution.prunegrad import PruneGrad

            if not cls.fixed:
                cls._built[cls.name] = PruneGrad
            else:
                doc = f"``PruneGrad`` with {cls.fixed} (registry entry {cls.name!r})."
                attrs = {"name": cls.name, "__doc__": doc, "__module__": __name__}
                cls._built[cls.name] = type(cls.__name__.lstrip("_"), (PruneGrad,), attrs)
        return cls._built[cls.name]


class _PruneGradEntry(_LazyPruneGrad):
    name = "prunegrad"


class _PruneGradRandom(_LazyPruneGrad):
    name = "prunegrad_random"
    fixed = {"scoring": "random"}


class _PruneInt(_LazyPruneGrad):
    name = "pruneint"
    fixed = {"scoring": "integrated_gradients"}


class _PruneGradLayer(_LazyPruneGrad):
    name = "prunegrad_layer"
    fixed = {"threshold": "layer"}


METHODS: dict[str, type[Attribution]] = {
    cls.name: cls
    for cls in (
        Gradient,
        GradientXInput,
        IntegratedGradients,
        SmoothGrad,
        SmoothGradSquared,
        GuidedBackprop,
        GradCAM,
        FullGrad,
        RandomMap,
        EdgeMap,
        _PruneGradEntry,
        _PruneGradRandom,
        _PruneInt,
        _PruneGradLayer,
    )
}


def get_method(name: str, model: nn.Module, **options: Any) -> Attribution:
    """Build the method registered as ``name`` for ``model`` with its keyword ``options``.

    Raises a ``ValueError`` that lists the known names when ``name`` is not one of them.

    Example
    -------
    >>> method = get_method("integrated_gradients", model, steps=50)
    >>> maps = method.attribute(x)
    """
    if name not in METHODS:
        raise ValueError(
            f"unknown attribution method {name!r}; known methods: {', '.join(METHODS)}"
        )
    return METHODS[name](model, **options)


def attribute(
    model: nn.Module,
    inputs: Tensor,
    target: TargetLike = None,
    method: str = "prunegrad",
    **options: Any,
) -> Tensor:
    """One call: the ``method`` map of ``target`` (default: the predicted class), like ``inputs``.

    ``options`` go to the method's constructor (e.g. ``sparsity=0.9`` for PruneGrad).

    Example
    -------
    >>> maps = attribute(model, x)                                  # PruneGrad, predicted class
    >>> maps = attribute(model, x, target=3, method="gradcam")
    """
    return get_method(method, model, **options).attribute(inputs, target)
