"""What every attribution method shares: the interface, input checks, targets and model safety.

Every method is used the same way (Captum-style)::

    method = SomeMethod(model, **options)
    maps = method.attribute(inputs, target=None)   # same shape as inputs

``target`` is ``None`` (the class the model predicts), an ``int`` (one class for the whole
batch) or one class per sample (a list or a 1-D tensor). Scores are pre-softmax logits.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from prunegrad_lite.runtime import model_device

__all__ = [
    "Attribution",
    "TargetLike",
    "check_inputs",
    "check_model",
    "checked",
    "input_gradient",
    "preserve_model_state",
    "resolve_target",
    "target_scores",
]

TargetLike = int | Sequence[int] | Tensor | None


def _check_module(model: object) -> None:
    if isinstance(model, type) and issubclass(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module instance, got the class {model.__name__}: "
            f"build it first, e.g. {model.__name__}(...).eval(), and load its weights"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def check_model(model: nn.Module) -> None:
    """Refuse what the methods cannot explain faithfully: non-modules and models in train mode.

    In train mode BatchNorm mixes the samples of a batch (one image's map would depend on the
    others) and updates its running statistics (the call would change the model), and Dropout
    makes every map random. We refuse rather than silently switch modes: call ``model.eval()``.
    Also refused, each with what to do: a model class instead of an instance, parameters on
    the meta device (shapes without values) and parameters created inside
    ``torch.inference_mode()`` (they can take no part in a gradient).
    """
    _check_module(model)
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.is_meta for t in tensors):
        raise ValueError(
            f"{type(model).__name__} has parameters on the meta device (shapes without values): "
            "materialise it first, e.g. model.to_empty(device='cpu') and then "
            "model.load_state_dict(weights)"
        )
    if any(t.is_inference() for t in tensors):
        raise ValueError(
            f"{type(model).__name__} has parameters or buffers created inside "
            "torch.inference_mode() (inference tensors), which can take no part in a gradient: "
            "build or load the model outside inference_mode (torch.no_grad() is fine)"
        )
    if any(m.training for m in model.modules()):  # names only for the error (per-call cost)
        training = [n or type(model).__name__ for n, m in model.named_modules() if m.training]
        raise ValueError(
            f"{type(model).__name__} is in training mode (modules {', '.join(training[:3])}"
            f"{', ...' if len(training) > 3 else ''}): BatchNorm would mix the samples of the "
            "batch and update its running statistics, and Dropout would make maps random. "
            "Call model.eval() before explaining it."
        )


def _first_layer_channels(model: nn.Module) -> int | None:
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
        if isinstance(module, nn.Linear):
            return None  # a fully connected first layer: the feature count is checked by torch
    return None


def _model_dtype(model: nn.Module) -> torch.dtype | None:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def check_inputs(model: nn.Module, inputs: Tensor) -> Tensor:
    """Check a batch of inputs and return a private copy on the model's device and dtype.

    The copy is never the caller's tensor nor a view of it, so nothing a model does to it (an
    in-place first ReLU, say) reaches the caller: the inputs are left untouched by every
    method. Floating inputs of another dtype than the model's parameters (float16, bfloat16,
    float64 for a float32 model) are converted to the model's dtype; inference-mode tensors are
    copied into ordinary ones.

    Raises a ``TypeError`` for a non-tensor, a sparse or a non-floating tensor and a
    ``ValueError`` for a missing batch dimension, a channel count the first convolution does
    not take, an empty batch, NaN/inf values, meta-device inputs or a call inside
    ``torch.inference_mode()`` (where no gradient can be taken).
    """
    if not isinstance(inputs, Tensor):
        hint = (
            "; convert with torch.from_numpy(x).float()"
            if type(inputs).__module__.startswith("numpy")
            else ""
        )
        raise TypeError(
            f"inputs must be a torch.Tensor of shape (N, C, H, W) or (N, features), "
            f"got {type(inputs).__name__}{hint}"
        )
    if inputs.layout != torch.strided:
        raise TypeError(
            f"inputs must be a dense tensor, got layout {inputs.layout}: use inputs.to_dense()"
        )
    if not inputs.is_floating_point():
        raise TypeError(
            f"inputs must be floating point (normalised images), got dtype {inputs.dtype}; "
            "convert with inputs.float() and normalise as the model expects"
        )
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "called inside torch.inference_mode(), where no gradient can be computed: call "
            "the attribution method outside that block (it runs without a graph anyway; "
            "torch.no_grad() around it is fine)"
        )
    if inputs.is_meta:
        raise ValueError("inputs are on the meta device (shapes without values): pass real tensors")
    channels = _first_layer_channels(model)
    if inputs.ndim < 2 or (
        channels is not None and inputs.ndim == 3 and inputs.shape[0] == channels
    ):
        raise ValueError(
            f"inputs of shape {tuple(inputs.shape)} have no batch dimension: pass a batch "
            "(N, C, H, W); for one image use inputs.unsqueeze(0)"
        )
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch (N = 0): pass at least one sample")
    if channels is not None and inputs.ndim >= 3 and inputs.shape[1] != channels:
        raise ValueError(
            f"inputs have {inputs.shape[1]} channels (shape {tuple(inputs.shape)}) but the "
            f"model's first convolution takes {channels}: pass (N, {channels}, H, W)"
        )
    if inputs.numel() and not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values: clean or re-normalise them")
    dtype = _model_dtype(model) or inputs.dtype
    # copy=True: a new tensor even when device and dtype already match (never an alias)
    return inputs.detach().to(device=model_device(model), dtype=dtype, copy=True)


def _check_logits(logits: object, batch: int | None = None) -> Tensor:
    """The model's output, checked to be one tensor of class scores (N, K), N = ``batch``."""
    if not isinstance(logits, Tensor):
        what = type(logits).__name__
        keys = f" with keys {list(logits)[:5]}" if isinstance(logits, dict) else ""
        raise TypeError(
            f"the model returned a {what}{keys}, not one tensor of class scores (N, K): "
            "attribution needs a model whose forward returns the logits; wrap it, e.g. "
            "a module whose forward returns model(x)[0] or model(x)['logits']"
        )
    if logits.ndim != 2 or not logits.is_floating_point():
        hint = (
            ": for a one-score model return torch.stack([-s, s], dim=1) (two classes) "
            "or s.unsqueeze(1) with target=0"
            if logits.ndim == 1
            else ": reduce it to one score per class and sample first"
        )
        raise ValueError(
            f"the model returned a {logits.dtype} tensor of shape {tuple(logits.shape)}, but "
            f"attribution needs floating class scores (logits) of shape (N, K){hint}"
        )
    if batch is not None and logits.shape[0] != batch:
        raise ValueError(
            f"the model returned {logits.shape[0]} rows of logits for {batch} inputs: its "
            "forward must keep the batch dimension (one row of class scores per input)"
        )
    return logits


def resolve_target(target: TargetLike, logits: Tensor, batch: int | None = None) -> Tensor:
    """Turn ``target`` into a long tensor of shape (N,) on the logits' device.

    ``None`` picks the predicted class (argmax of ``logits``, shape (N, K)). ``batch``: the
    number of inputs the logits must have one row each for (checked when given).
    """
    logits = _check_logits(logits, batch)
    n, k = logits.shape[0], logits.shape[-1]
    if target is None:
        return logits.detach().argmax(dim=-1)
    if isinstance(target, bool):
        raise TypeError("target must be an int, a sequence of ints or a tensor, not a bool")
    if isinstance(target, (str, bytes)):
        raise TypeError(
            f"target must be a class index (int), a sequence of them or a tensor, got the "
            f"string {target!r}: look the index up in the class list, e.g. "
            "classes.index(name)"
        )
    if isinstance(target, int):
        if not 0 <= target < k:
            raise ValueError(
                f"target class {target} is out of range: the model has {k} classes (0..{k - 1})"
            )
        t = torch.full((n,), target, dtype=torch.long, device=logits.device)
    else:
        try:
            t = torch.as_tensor(target, device=logits.device)
        except (TypeError, ValueError, RuntimeError, OverflowError) as err:
            raise TypeError(
                f"target must be an int, a sequence of ints or a tensor of class indices "
                f"(0..{k - 1}), got {type(target).__name__} ({err})"
            ) from err
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got dtype {t.dtype}")
        t = t.long().reshape(-1) if t.ndim == 0 else t.long()
        if t.ndim != 1:
            raise ValueError(
                f"target must be 1-D (one class per sample), got shape {tuple(t.shape)}"
            )
        if t.numel() == 1 and n > 1:
            t = t.expand(n)
        if t.numel() != n:
            raise ValueError(
                f"target has {t.numel()} entries but the batch has {n} samples: "
                "give one class per sample, a single int, or None for the predicted class"
            )
    if (t < 0).any() or (t >= k).any():
        bad = t[(t < 0) | (t >= k)][0].item()
        raise ValueError(
            f"target class {bad} is out of range: the model has {k} classes (0..{k - 1})"
        )
    return t


def target_scores(logits: Tensor, target: Tensor) -> Tensor:
    """S_c for each sample: ``logits[n, target[n]]``, shape (N,)."""
    logits = _check_logits(logits)
    if logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"the model returned {logits.shape[0]} rows of logits for {target.shape[0]} samples: "
            "its forward must keep the batch dimension (one row of class scores per input)"
        )
    return logits.gather(-1, target.view(-1, 1)).squeeze(-1)


def _copy_tensor_args(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, Tensor) else a for a in args)


@contextlib.contextmanager
def preserve_model_state(model: nn.Module) -> Iterator[None]:
    """Restore train/eval flags, ``requires_grad``, ``inplace`` flags and ``.grad`` on exit.

    The methods do not change these on purpose; this is the safety net that makes the promise
    "the caller's model is left exactly as it was" hold even when a call raises halfway.
    Inside the block every top-level call of ``model`` gets copies of its tensor arguments
    (identity forward and backward), so a model that writes into its input (a first
    ``nn.ReLU(inplace=True)``) cannot change the tensors a method reuses between passes.
    """
    modules = list(model.modules())
    modes = [(m, m.training) for m in modules]
    inplace = [(m, m.inplace) for m in modules if isinstance(getattr(m, "inplace", None), bool)]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    handle = model.register_forward_pre_hook(_copy_tensor_args)
    try:
        yield
    finally:
        handle.remove()
        for m, training in modes:
            m.training = training
        for m, flag in inplace:
            m.inplace = flag
        for p, requires_grad, grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad


_checked = threading.local()  # per thread: the (model, checked inputs) of the open blocks


@contextlib.contextmanager
def checked(model: nn.Module, inputs: Tensor) -> Iterator[Tensor]:
    """The guard of every public entry point: check the model and the inputs, keep the model.

    :func:`check_model`, then :func:`check_inputs` (yields its private copy of ``inputs`` on
    the model's device), then :func:`preserve_model_state` for the block. A block opened inside
    another one of the same thread for the same model and the inputs that one yielded (a public
    step called by a public method) yields them as they are: the checks run once per call.

    Example
    -------
    >>> with checked(model, x) as inputs:      # inputs: (N, C, H, W) on the model's device
    ...     logits = model(inputs)
    """
    open_blocks = _checked.__dict__.setdefault("blocks", [])
    if any(m is model and x is inputs for m, x in open_blocks):
        yield inputs
        return
    check_model(model)
    x = check_inputs(model, inputs)
    entry = (model, x)
    with preserve_model_state(model):
        open_blocks.append(entry)
        try:
            yield x
        finally:
            del open_blocks[next(i for i, e in enumerate(open_blocks) if e is entry)]


def input_gradient(
    model: nn.Module, inputs: Tensor, target: TargetLike, *, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """``dS_target / d inputs`` and the logits, in one forward and one backward pass.

    ``target`` is resolved on this pass's own logits (None: the predicted class), so no
    extra forward pass is needed to find it. ``inputs`` (N, ...) is not modified; the
    gradient has its shape. Works inside ``torch.no_grad()``. Model parameters receive no
    ``.grad``.
    """
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(True)
        # the model gets a non-leaf copy: a first in-place op (nn.ReLU(inplace=True)) is allowed
        logits = model(x.clone())  # (N, K)
        target = resolve_target(target, logits, x.shape[0])
        (grad,) = torch.autograd.grad(
            target_scores(logits, target).sum(), x, create_graph=create_graph
        )
    return grad, logits.detach()


class Attribution:
    """Base class of every attribution method: ``Method(model, **options).attribute(x, target)``.

    Subclasses implement :meth:`_attribute` on checked inputs (on the model's device) with a
    resolved target; the base class does the checks, keeps the model's state, moves the result
    back to the inputs' device and works inside ``torch.no_grad()``.
    """

    #: short name used in the method registry and in figure titles
    name: str = "attribution"

    def __init__(self, model: nn.Module) -> None:
        _check_module(model)
        self.model = model

    def attribute(self, inputs: Tensor, target: TargetLike = None) -> Tensor:
        """Attribution map of ``target`` for each sample, shaped like ``inputs`` (N, C, H, W)."""
        # inference_mode(False): a call inside torch.inference_mode() still gets its gradient
        with torch.inference_mode(False):
            with checked(self.model, inputs) as x, torch.enable_grad():
                result = self._attribute(x, target)
            if not torch.isfinite(result).all():
                raise ValueError(
                    f"{self.name}: the map holds NaN or infinite values although the inputs "
                    "are finite: the model's logits or gradients overflow for these inputs "
                    "(check model(inputs) for NaN/inf, or use float32 instead of float16)"
                )
            return result.detach().to(inputs.device)

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _predict(self, inputs: Tensor, target: TargetLike) -> tuple[Tensor, Tensor]:
        """Logits (N, K) of the unchanged model without gradient, and the resolved target (N,)."""
        with torch.no_grad():
            logits = self.model(inputs)
        return logits, resolve_target(target, logits, inputs.shape[0])

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({opts})"

    def _options(self) -> dict:
        return {}
