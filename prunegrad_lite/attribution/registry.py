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
``prunegrad``            :class:`PruneGrad` (Taylor scores, global threshold)
``prunegrad_random``     :class:`PruneGradRandom`: random pruning control
``pruneint``             :class:`PruneInt`: Integrated-Gradients scores
``prunegrad_layer``      :class:`PruneGradLayer`: per-layer threshold
======================== ============================================================

The last three are subclasses of ``PruneGrad`` with one option fixed (docs/method.md section 1,
"Variants").
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
from prunegrad_lite.attribution.prunegrad import PruneGrad

__all__ = [
    "METHODS",
    "PruneGradLayer",
    "PruneGradRandom",
    "PruneInt",
    "SmoothGradSquared",
    "attribute",
    "get_method",
]


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


class _FixedPruneGrad(PruneGrad):
    """``PruneGrad`` with the options in ``fixed`` set; passing one with another value is an error."""

    fixed: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: nn.Module, **options: Any) -> None:
        for key, value in self.fixed.items():
            if options.get(key, value) != value:
                raise ValueError(
                    f"{self.name!r} fixes {key}={value!r}; got {key}={options[key]!r}: "
                    f"use 'prunegrad' to choose {key} freely"
                )
        super().__init__(model, **{**options, **self.fixed})


class PruneGradRandom(_FixedPruneGrad):
    """PruneGrad with {'scoring': 'random'} fixed: random pruning at the same sparsity (control)."""

    name = "prunegrad_random"
    fixed = {"scoring": "random"}


class PruneInt(_FixedPruneGrad):
    """PruneGrad with {'scoring': 'integrated_gradients'} fixed: PruneInt (IG neuron scores)."""

    name = "pruneint"
    fixed = {"scoring": "integrated_gradients"}


class PruneGradLayer(_FixedPruneGrad):
    """PruneGrad with {'threshold': 'layer'} fixed: one percentile per layer (for teaching)."""

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
        PruneGrad,
        PruneGradRandom,
        PruneInt,
        PruneGradLayer,
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
