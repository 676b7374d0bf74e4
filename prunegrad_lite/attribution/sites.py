"""What counts as a ReLU-family activation call, and how one call (a *site*) is described.

PruneGrad's neurons are the scalar outputs of these calls (docs/method.md section 1). The
interception itself, which finds the calls while a model runs, is
:mod:`~prunegrad_lite.attribution.activations`; this module holds the vocabulary it shares with
the methods: the :class:`ActivationSite` record, the table of intercepted functions and how a
call's arguments are read, and the error and warning about models with no or other activations.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ActivationSite",
    "NoActivationError",
    "UnhandledActivationWarning",
    "no_activation_error",
    "parse_call",
    "warn_other_activations",
]


class NoActivationError(ValueError):
    """Raised when a model has no ReLU-family activation, so PruneGrad has no neurons to prune."""


def no_activation_error(model: nn.Module) -> NoActivationError:
    """The error for a model whose forward pass calls no ReLU-family activation."""
    return NoActivationError(
        f"{type(model).__name__} calls no ReLU-family activation (nn.ReLU, F.relu, torch.relu, "
        "ReLU6; module or functional, in-place or not) in its forward pass, so PruneGrad has no "
        "neurons to score and prune. PruneGrad is defined for ReLU networks; use a plain "
        "gradient method for this model."
    )


@dataclass(frozen=True)
class ActivationSite:
    """One call of a ReLU-family activation during a forward pass.

    Attributes
    ----------
    index : position of the call in the forward pass (0, 1, ...).
    name : the module path that made the call, ``#k`` for the k-th call of the same path,
        ``/relu`` appended when a non-activation module called the function directly.
    kind : ``"relu"`` or ``"relu6"``.
    shape : the per-sample shape of the output, e.g. ``(64, 7, 7)``.
    """

    index: int
    name: str
    kind: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of neurons (scalar outputs) per sample at this site."""
        n = 1
        for s in self.shape:
            n *= s
        return n


# The activation functions we intercept: func -> (kind, in_place).
_RELU_FUNCS: dict[Callable, tuple[str, bool]] = {
    F.relu: ("relu", False),  # in-place when inplace=True is passed
    torch.relu: ("relu", False),
    torch.relu_: ("relu", True),
    torch.Tensor.relu: ("relu", False),
    torch.Tensor.relu_: ("relu", True),
    F.relu6: ("relu6", False),
    F.hardtanh: ("relu6", False),  # only with min_val=0, max_val=6 (what nn.ReLU6 calls)
    F.hardtanh_: ("relu6", True),
}
if hasattr(F, "relu_"):  # F.relu_ is torch.relu_ in current releases, kept for older ones
    _RELU_FUNCS.setdefault(F.relu_, ("relu", True))

_ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)


def parse_call(func: Callable, args: tuple, kwargs: dict) -> tuple[str, Tensor, bool] | None:
    """Return ``(kind, input, in_place)`` when ``func(*args, **kwargs)`` is a ReLU-family call."""
    entry = _RELU_FUNCS.get(func)
    if entry is None or not args or not isinstance(args[0], Tensor):
        return None
    kind, in_place = entry
    x = args[0]
    if func is F.relu or func is F.relu6:
        in_place = bool(args[1] if len(args) > 1 else kwargs.get("inplace", False))
    elif func in (F.hardtanh, F.hardtanh_):
        names = ("min_val", "max_val", "inplace")
        defaults = (-1.0, 1.0, False)
        values = [
            args[i + 1] if len(args) > i + 1 else kwargs.get(n, d)
            for i, (n, d) in enumerate(zip(names, defaults))
        ]
        if float(values[0]) != 0.0 or float(values[1]) != 6.0:
            return None  # a hardtanh that is not ReLU6 is not a ReLU-family activation
        in_place = in_place or bool(values[2])
    if not x.is_floating_point():
        return None
    return kind, x, in_place


# Activation functions that are *not* ReLU-family (by the name of the function torch dispatches):
# their neurons are neither scored nor pruned, nor guided; a model calling them is warned about.
_OTHER_ACTIVATIONS = frozenset(
    {
        "leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_", "elu", "elu_", "selu",
        "selu_", "celu", "celu_", "gelu", "silu", "mish", "hardswish", "hardtanh", "hardtanh_",
        "softplus",
    }
)  # fmt: skip


class UnhandledActivationWarning(UserWarning):
    """A model calls activations that are not ReLU-family (LeakyReLU, GELU, ...): not intercepted."""


_warned: set[tuple[str, tuple[str, ...]]] = set()  # (model class, kinds): warn once each
_warned_lock = threading.Lock()


def warn_other_activations(model: nn.Module, other: dict[str, int]) -> None:
    """One :class:`UnhandledActivationWarning` per model class and set of kinds seen."""
    if not other:
        return
    kinds = tuple(sorted(other))
    key = (type(model).__qualname__, kinds)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    calls = ", ".join(f"{k} ({other[k]} call{'s' if other[k] > 1 else ''})" for k in kinds)
    warnings.warn(
        f"{type(model).__name__} also calls activations that are not ReLU-family: {calls}. "
        "Only ReLU and ReLU6 are intercepted: the neurons of these are neither scored nor pruned "
        "by PruneGrad, not guided by Guided Backprop and not used as Grad-CAM's default layer; "
        "the maps treat them as a fixed part of the network. (Warned once per model class.)",
        UnhandledActivationWarning,
        stacklevel=4,
    )
