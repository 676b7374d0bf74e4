"""Finding every ReLU-family activation *call* of a model, and acting on its output.

PruneGrad's neurons are the scalar outputs of ReLU-family activations (docs/method.md section 1;
what counts as one, and the :class:`ActivationSite` record of a call, are in
:mod:`~prunegrad_lite.attribution.sites`).
Module hooks alone miss functional calls (``F.relu``, ``torch.relu``, ``Tensor.relu``), break on
in-place ReLU and see a reused ``nn.ReLU`` module as one layer. Here the activation *functions*
are intercepted for the duration of a ``with`` block with a
:class:`torch.overrides.TorchFunctionMode`, so every call is caught, whatever wrote it:

* ``nn.ReLU`` / ``F.relu`` / ``F.relu_`` / ``torch.relu`` / ``torch.relu_`` / ``Tensor.relu(_)``
* ``nn.ReLU6`` (which calls ``F.hardtanh(x, 0, 6)``) / ``F.relu6`` / ``F.hardtanh`` with ``min_val=0``

Each call is one *site*, numbered in call order; a module called three times gives three sites.
While intercepted, an activation is computed out of place and handed to a *handler*
``handler(site, output) -> output`` that may record or mask it. An in-place call then writes the
handler's result back into its input, so code that relies on the in-place side effect still sees
it, and the value the handler saw is never modified afterwards (its gradient stays exact).

A second, scoped set of forward hooks keeps a stack of the modules being run, only to give each
site a readable name such as ``layer1.0.relu`` or ``layer1.0.relu#2`` (second call of the module).
Everything registered is removed when the block ends, even when it raised.

Threads: the per-call state (the site list, the names, where a forward pass starts) belongs to
the calling thread. Torch's function-mode stack is per thread, so a mode only ever sees its own
thread's calls; the hooks on the (possibly shared) model act only for the thread whose block
registered them (a thread-local registry of the active blocks), so several threads can explain
one model at the same time and each gets exactly its single-threaded maps.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from prunegrad_lite.attribution.lean import (
    ActivationModifiedError,
    _activate,
    _activate_,
    copies_mode,
    masked_activation,
)
from prunegrad_lite.attribution.sites import (
    _ACTIVATION_MODULES,
    _OTHER_ACTIVATIONS,
    ActivationSite,
    NoActivationError,
    UnhandledActivationWarning,
    no_activation_error,
    parse_call,
    warn_other_activations,
)

__all__ = [
    "ActivationSite",
    "NoActivationError",
    "UnhandledActivationWarning",
    "count_activation_sites",
    "intercept_activations",
    "no_activation_error",
    "straight_through_clip",
]


Handler = Callable[[ActivationSite, Tensor], Tensor]


class _Interceptor(TorchFunctionMode):
    """Routes every ReLU-family call to ``handler`` and numbers the calls.

    One instance belongs to one ``with`` block in one thread: torch keeps the function-mode
    stack per thread, so ``__torch_function__`` only sees calls made by that thread.
    """

    def __init__(
        self,
        handler: Handler,
        module_stack: list[str],
        copies: str = "default",
        names: bool = True,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.names = names  # False: sites are called site0, site1, ... (no module stack)
        self.copies = copies  # "default", "lean" or "copy": see intercept_activations
        self.returned: list[tuple[Tensor, int]] = []  # lean mode: (tensor, version) per site
        self.module_stack = module_stack
        self.sites: list[ActivationSite] = []
        self._name_counts: dict[str, int] = {}
        self.other: dict[str, int] = {}  # non-ReLU-family activation calls by function name

    def new_pass(self) -> None:
        """A new top-level forward pass: number its calls from 0 again."""
        self.sites.clear()
        self.returned.clear()
        self._name_counts.clear()
        self.module_stack.clear()

    def _site_name(self) -> str:
        if not self.names:
            return f"site{len(self.sites)}"
        base = self.module_stack[-1] if self.module_stack else "<model>/relu"
        count = self._name_counts.get(base, 0) + 1
        self._name_counts[base] = count
        return base if count == 1 else f"{base}#{count}"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        parsed = parse_call(func, args, kwargs)
        if parsed is None:
            name = getattr(func, "__name__", None)
            if name in _OTHER_ACTIVATIONS:
                self.other[name] = self.other.get(name, 0) + 1
            return func(*args, **kwargs)
        kind, x, in_place = parsed
        site = ActivationSite(len(self.sites), self._site_name(), kind, tuple(x.shape[1:]))
        self.sites.append(site)
        mask_of = getattr(self.handler, "mask_of", None)
        writable = in_place and not (x.is_leaf and x.requires_grad)
        if self.copies == "lean" and writable:
            # In place into x, as the plain model computes it: no second buffer per site.
            if mask_of is not None:
                out = masked_activation(x, mask_of(site, x.shape), kind, in_place=True)
            else:
                out = self.handler(site, _activate_(kind, x))
                if out is not x:  # a new tensor cannot be written back into x (saved for
                    raise ActivationModifiedError(  # backward): rerun with copies
                        f"the handler replaced the in-place output of {site.name}"
                    )
            self.returned.append((out, out._version))
            return out
        if mask_of is not None:  # a 0/1 mask: one fused op that saves only its output
            out = masked_activation(x, mask_of(site, x.shape), kind)
        else:
            # Out of place, so the handler's tensor stays intact. ReLU6 (hardtanh) saves its
            # input for backward, so an in-place call, which overwrites that input below,
            # works on a copy.
            out = _activate(kind, x.clone() if in_place and kind == "relu6" else x)  # (N, ...)
            out = self.handler(site, out)
        if writable:
            return x.copy_(out)  # keep the in-place side effect the model may rely on
        if self.copies == "copy" and not in_place:
            out = out.clone()  # the model may modify what it gets back: never the handler's
        if self.copies == "lean":
            self.returned.append((out, out._version))
        return out

    def check_returned(self) -> None:
        """Lean mode, at the end of a forward pass: raise if the model modified a returned site."""
        changed = [s for s, (t, v) in zip(self.sites, self.returned) if t._version != v]
        self.returned.clear()
        if changed:
            raise ActivationModifiedError(
                f"the model modified the output of activation {changed[0].name} in place after "
                "the call; run the interception with copies"
            )


# The interceptors whose ``with`` block is open, per thread. Hooks on a shared model fire in
# every thread that runs it; each hook acts only when its own interceptor is open in the
# thread running the hook, so one thread's forward pass never touches another thread's state.
_local = threading.local()


def _open_modes() -> list[_Interceptor]:
    modes = getattr(_local, "modes", None)
    if modes is None:
        modes = _local.modes = []
    return modes


def _is_open(mode: _Interceptor) -> bool:
    return any(m is mode for m in _open_modes())


def _name_hooks(model: nn.Module, mode: _Interceptor) -> list:
    """Forward hooks that keep ``mode.module_stack`` equal to the path of the module now running."""
    handles = []
    stack = mode.module_stack
    for path, module in model.named_modules():
        is_act = isinstance(module, _ACTIVATION_MODULES)
        label = (path or "<model>") if is_act else f"{path or '<model>'}/relu"

        def pre(mod, inputs, _label=label):
            if _is_open(mode):
                stack.append(_label)

        def post(mod, inputs, output, _label=label):
            if _is_open(mode) and stack and stack[-1] == _label:
                stack.pop()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post, always_call=True))
    return handles


def _check_interceptable(model: nn.Module) -> None:
    """Refuse models whose activation calls cannot be seen (compiled TorchScript)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        scripted = [
            name or "<model>"
            for name, m in model.named_modules()
            if isinstance(m, torch.jit.ScriptModule)
        ]
        raise TypeError(
            f"{type(model).__name__} is (or contains, at {', '.join(scripted[:3])}) a TorchScript "
            "module (torch.jit.trace / torch.jit.script): its compiled graph calls ReLU without "
            "going through Python, so its activations cannot be intercepted and PruneGrad, "
            "Guided Backprop and Grad-CAM would silently see none or only some of them. Explain "
            "the original Python nn.Module instead (the one you traced)."
        )


@contextlib.contextmanager
def intercept_activations(
    model: nn.Module, handler: Handler | None = None, *, names: bool = True
) -> Iterator[list[ActivationSite]]:
    """Run ``model`` inside the block with every ReLU-family activation call routed to ``handler``.

    Yields the list of :class:`ActivationSite` that fills up, in call order, as the model runs;
    each top-level call of ``model`` numbers its activation calls from 0 again, so the list
    holds the sites of the latest forward pass and several passes (chunks of a batch) see the
    same site indices.
    ``handler(site, output)`` returns the tensor passed on (default: ``output`` unchanged).
    A handler with a method ``mask_of(site, shape) -> Tensor`` (a uint8 0/1 mask) is not
    called: the site's output becomes :func:`masked_activation` of its input and that mask.
    How tensors are handed back to the model is set by :func:`interception_copies`.
    ``names=False`` skips the naming hooks (sites are then called ``site3`` and so on) for speed.
    Nothing stays registered after the block, even when it raised. Thread-safe: the block and
    its sites belong to the calling thread, other threads may run the same model meanwhile.
    A TorchScript model raises a ``TypeError`` (its activations cannot be seen), and calls of
    non-ReLU-family activations (LeakyReLU, GELU, ...) give one
    :class:`UnhandledActivationWarning` per model class.

    Example
    -------
    >>> with intercept_activations(model) as sites:
    ...     model(x)
    >>> [s.name for s in sites]
    """
    _check_interceptable(model)
    handler = handler or (lambda site, out: out)
    # no attribute of mode may refer back to it: a reference cycle would keep the handler, and
    # whatever its closure holds (step 1's scores), alive after the block until the next
    # garbage collection (+15% peak memory on VGG16 when it did)
    mode = _Interceptor(handler, [], copies_mode(), names)

    def new_pass(mod, inputs):
        if _is_open(mode):  # only the thread whose block this is
            mode.new_pass()

    def end_pass(mod, inputs, output):
        if _is_open(mode) and mode.copies == "lean":
            mode.check_returned()

    handles = [model.register_forward_pre_hook(new_pass), model.register_forward_hook(end_pass)]
    open_modes = _open_modes()
    open_modes.append(mode)
    try:
        if names:
            handles += _name_hooks(model, mode)
        with mode:
            yield mode.sites
        warn_other_activations(model, mode.other)
    finally:
        for i in range(len(open_modes) - 1, -1, -1):
            if open_modes[i] is mode:
                del open_modes[i]
                break
        for h in handles:
            h.remove()


def count_activation_sites(model: nn.Module, inputs: Tensor) -> list[ActivationSite]:
    """The activation sites one forward pass of ``inputs`` meets (no gradient is computed).

    Raises :class:`NoActivationError` when there are none.
    """
    with torch.no_grad(), intercept_activations(model) as sites:
        model(inputs)
    if not sites:
        raise no_activation_error(model)
    return sites


class _StraightThroughClip(TorchFunctionMode):
    """ReLU6 calls return ReLU6's value with ReLU's gradient (1 for every ``x > 0``)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        parsed = parse_call(func, args, kwargs)
        if parsed is None or parsed[0] != "relu6" or parsed[2]:
            return func(*args, **kwargs)  # not ReLU6, or in place (the interception copies)
        x = parsed[1]
        r = torch.relu(x)
        return r - (r - F.relu6(x)).detach()


@contextlib.contextmanager
def straight_through_clip() -> Iterator[None]:
    """Inside the block, ReLU6 passes gradient through its clip as ReLU does; values unchanged.

    Enter it *outside* :func:`intercept_activations` (which then sees the straight-through
    output as the site's output). Used by ``clip_treatment="straight_through"``
    (:mod:`~prunegrad_lite.attribution.relu6`).

    Example
    -------
    >>> with straight_through_clip():
    ...     y = F.relu6(x)          # same values; dy/dx = 1 where x > 0
    """
    with _StraightThroughClip():
        yield
