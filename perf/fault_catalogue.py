"""A catalogue of bad inputs and faults, as careless and hostile users would make them (issue 17).

Runs a few hundred cases against the package's public API, the cache and the command line, and
classifies each outcome:

* ``clear``     refused with an error that names the problem (the case's keywords appear in the
                message), or handled correctly (the result matches the case's oracle; warned
                where a warning is what the case needs);
* ``cryptic``   refused, but the message does not say what was wrong (a raw torch/JSON error);
* ``silent``    returned a result that is wrong, or returned where it should have refused;
* ``crash``     ended in an exception that means a bug (KeyError, IndexError, AttributeError,
                ZeroDivisionError, ...), or a command line that ended in a traceback;
* ``mutation``  changed the caller's model (parameters, buffers, requires_grad, train/eval,
                inplace flags, hooks) or input tensor, whatever else happened.

Each case is run in this process (small models, a few milliseconds each; the CLI cases call
``prunegrad_lite.cli.main``), so the whole catalogue takes a minute or two on a CPU. It uses only
the public API, so it also runs against an older checkout to count what a fix changed::

    PYTHONPATH=. python perf/fault_catalogue.py                      # this checkout
    PYTHONPATH=/path/to/older/checkout python perf/fault_catalogue.py
    python perf/fault_catalogue.py --show cryptic,silent,crash       # list those cases
    python perf/fault_catalogue.py --json runs/faults.json           # every case's outcome
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import prunegrad_lite as pgl  # noqa: E402

OUTCOMES = ("clear", "cryptic", "silent", "crash", "mutation")
BUG_TYPES = (
    KeyError,
    IndexError,
    AttributeError,
    ZeroDivisionError,
    UnboundLocalError,
    NameError,
    AssertionError,
    RecursionError,
    StopIteration,
)


# ------------------------------------------------------------------------------------ models


class TinyCNN(nn.Module):
    """conv-ReLU-pool-conv-ReLU-mean-linear on (N, 3, 8, 8), 4 classes."""

    def __init__(self, inplace: bool = False, first: nn.Module | None = None) -> None:
        super().__init__()
        self.first = first if first is not None else nn.Identity()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.relu2 = nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.relu1(self.conv1(self.first(x)))
        x = F.max_pool2d(x, 2)
        x = self.relu2(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def tiny(seed: int = 0, **kwargs: Any) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyCNN(**kwargs).eval()


class Wrapped(nn.Module):
    """A tiny CNN whose output is turned into something that is not (N, K) logits."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.body = tiny()

    def forward(self, x):
        y = self.body(x)
        return {
            "tuple": lambda: (y, y),
            "dict": lambda: {"logits": y},
            "list": lambda: [y],
            "1d": lambda: y[:, 0],
            "3d": lambda: y.unsqueeze(-1),
            "int": lambda: y.argmax(1, keepdim=True),
            "scalar": lambda: y.sum(),
            "fewer_rows": lambda: y[:1],
            "none": lambda: None,
        }[self.kind]()


class NoReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


class MixedLeaky(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = tiny()
        self.leaky = nn.LeakyReLU(0.1)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.body(self.leaky(self.conv(x)))


class MixedGELU(MixedLeaky):
    def __init__(self) -> None:
        super().__init__()
        self.leaky = nn.GELU()


class NaNWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = tiny()
        with torch.no_grad():
            self.body.fc.weight[0, 0] = float("nan")

    def forward(self, x):
        return self.body(x)


class InplaceOnInput(nn.Module):
    """Writes into its input tensor (x.relu_()), a careless but legal forward."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.body = tiny()
        self.inplace = inplace

    def forward(self, x):
        return self.body(x.relu_() if self.inplace else x.relu())


def _first_relu(inplace: bool) -> nn.Module:
    """The tiny CNN with a ReLU as its very first op (in place or not), same weights."""
    model = TinyCNN(first=nn.ReLU(inplace=inplace))
    model.load_state_dict(tiny().state_dict())
    return model.eval()


def _x(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ cases


@dataclass
class Case:
    category: str
    name: str
    run: Callable[[], Any]  # returns the result (or raises)
    keywords: str = ""  # regex: an error naming the problem matches it ("" = no error expected)
    oracle: Callable[[Any], bool] | None = None  # a correct result passes it
    model: nn.Module | None = None  # checked for mutation
    inputs: torch.Tensor | None = None  # checked for mutation
    want_warning: type | str | None = None  # the case needs this warning (class or its name)
    outcome: str = ""
    detail: str = ""
    extra: dict = field(default_factory=dict)


def _snapshot(model: nn.Module | None, inputs: torch.Tensor | None) -> Any:
    snap: dict[str, Any] = {}
    if isinstance(model, nn.Module):
        try:
            snap["state"] = {
                k: v.detach().clone() for k, v in model.state_dict().items() if not v.is_meta
            }
        except Exception:  # noqa: BLE001 - a model whose state cannot be read: skip that part
            snap["state"] = {}
        snap["flags"] = [
            (n, m.training, getattr(m, "inplace", None)) for n, m in model.named_modules()
        ]
        snap["grad"] = [(n, p.requires_grad, p.grad is None) for n, p in model.named_parameters()]
        snap["hooks"] = sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            for m in model.modules()
        )
    if isinstance(inputs, torch.Tensor) and not inputs.is_meta:
        snap["inputs"] = (inputs.detach().clone(), inputs.dtype, inputs.requires_grad)
    return snap


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.layout != torch.strided:
        a, b = a.to_dense(), b.to_dense()
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        a, b = (
            torch.view_as_real(a) if a.is_complex() else a,
            (torch.view_as_real(b) if b.is_complex() else b),
        )
        return bool(torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)))
    return bool(torch.equal(a, b))


def _mutated(before: Any, model: nn.Module | None, inputs: torch.Tensor | None) -> str:
    after = _snapshot(model, inputs)
    for key in ("flags", "grad", "hooks"):
        if key in before and before[key] != after.get(key):
            return f"model {key} changed"
    if "state" in before:
        for k, v in before["state"].items():
            if k not in after["state"] or not _same(v, after["state"][k]):
                return f"model {k} changed"
    if "inputs" in before:
        t, dtype, rg = before["inputs"]
        t2, dtype2, rg2 = after["inputs"]
        if dtype != dtype2 or rg != rg2 or not _same(t, t2):
            return "the caller's input changed"
    return ""


def classify(case: Case) -> None:
    before = _snapshot(case.model, case.inputs)
    error: BaseException | None = None
    result: Any = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = case.run()
        except Exception as err:  # noqa: BLE001 - what we classify
            error = err
    mutation = _mutated(before, case.model, case.inputs)
    names = {type(w.message).__name__ for w in caught} | {str(w.message)[:80] for w in caught}
    if mutation:
        case.outcome, case.detail = "mutation", mutation
        return
    if error is not None:
        message = f"{type(error).__name__}: {error}"
        case.detail = " ".join(message.split())[:240]
        if isinstance(error, _CLICrash):
            case.outcome = "crash"
        elif isinstance(error, BUG_TYPES):
            case.outcome = "crash"
        elif case.keywords and re.search(case.keywords, str(error), re.IGNORECASE):
            case.outcome = "clear"
        else:
            case.outcome = "cryptic"
        return
    if case.oracle is None:  # an error was the only right answer
        case.outcome, case.detail = "silent", f"returned {type(result).__name__}"
        return
    try:
        ok = bool(case.oracle(result))
    except Exception as err:  # noqa: BLE001 - an oracle that cannot even read the result
        ok, case.detail = False, f"oracle: {type(err).__name__}: {err}"
    if ok and case.want_warning is not None:
        wanted = (
            case.want_warning if isinstance(case.want_warning, str) else case.want_warning.__name__
        )
        ok = any(wanted in n for n in names)
        if not ok:
            case.detail = f"no {wanted}"
    case.outcome = "clear" if ok else "silent"
    if not ok and not case.detail:
        case.detail = "wrong result"


# --- helpers for building cases


def equal_to(reference: Callable[[], torch.Tensor], atol: float = 0.0) -> Callable[[Any], bool]:
    def check(result: Any) -> bool:
        ref = reference()
        if not isinstance(result, torch.Tensor) or result.shape != ref.shape:
            return False
        r = result.detach().to(ref.dtype)
        return (
            bool(torch.allclose(r, ref, atol=atol, rtol=0)) if atol else bool(torch.equal(r, ref))
        )

    return check


def _method_call(method: str, model: nn.Module, x: Any, **kw: Any) -> Callable[[], Any]:
    return lambda: pgl.attribute(model, x, method=method, **kw)


METHODS_FOR_INPUTS = ("gradient", "integrated_gradients", "prunegrad", "guided_backprop", "gradcam")
METHODS_FOR_MODELS = ("gradient", "prunegrad", "guided_backprop", "gradcam")
METHODS_FOR_TARGETS = ("gradient", "prunegrad", "gradcam")


def input_cases() -> list[Case]:
    cases: list[Case] = []
    x = _x()
    for method in METHODS_FOR_INPUTS:
        model = tiny()

        def ref(method=method, model=model):
            return pgl.attribute(model, _x(), method=method)

        def add(name, make, keywords="", oracle=None, method=method, model=model):
            inputs = make()
            cases.append(
                Case(
                    "inputs",
                    f"{method}: {name}",
                    _method_call(method, model, inputs),
                    keywords,
                    oracle,
                    model,
                    inputs if isinstance(inputs, torch.Tensor) else None,
                )
            )

        add("numpy array", lambda: x.numpy(), r"torch\.Tensor|numpy")
        add("python list", lambda: x.tolist(), r"torch\.Tensor")
        add("int64 tensor", lambda: x.long(), r"floating")
        add("bool tensor", lambda: x > 0, r"floating")
        add("complex tensor", lambda: torch.complex(x, x), r"floating|complex")
        add("no batch dimension", lambda: x[0].clone(), r"batch")
        add("empty batch", lambda: x[:0].clone(), r"empty|at least one")
        add("wrong channel count", lambda: torch.randn(2, 1, 8, 8), r"channel")
        add(
            "NaN pixel",
            lambda: x.clone().index_put_((torch.tensor(0),), torch.tensor(float("nan"))),
            r"NaN",
        )
        add("inf pixel", lambda: torch.where(x > 2, float("inf"), x), r"NaN|inf")
        add("meta inputs", lambda: torch.empty(2, 3, 8, 8, device="meta"), r"meta")
        add("sparse inputs", lambda: x.to_sparse(), r"dense|sparse|layout")
        add("1x1 images", lambda: torch.randn(2, 3, 1, 1), r"size|small|shape")
        add("5-D inputs", lambda: x.unsqueeze(2), r"shape|dimension|dims|4-D|expected")
        for dt in (torch.float16, torch.bfloat16, torch.float64):
            add(
                f"{dt} inputs",
                lambda dt=dt: x.to(dt),
                r"inputs\.float|convert|model's dtype",
                equal_to(
                    lambda dt=dt, method=method, model=model: pgl.attribute(
                        model, x.to(dt).float(), method=method
                    ),
                    atol=1e-6,
                ),
            )
        add("inference-mode tensor", lambda: _inference(x), r"inference", equal_to(ref))
        add(
            "transposed (non-contiguous)",
            lambda: x.transpose(2, 3).contiguous().transpose(2, 3),
            "",
            equal_to(ref, atol=1e-6),
        )
        add(
            "expanded (stride 0)",
            lambda: x[:1].expand(3, -1, -1, -1),
            "",
            equal_to(
                lambda method=method, model=model: pgl.attribute(
                    model, x[:1].repeat(3, 1, 1, 1), method=method
                )
            ),
        )
        add("requires_grad with .grad", lambda: _with_grad(x), "", equal_to(ref))
        cases.append(
            Case(
                "inputs",
                f"{method}: call inside torch.inference_mode()",
                lambda method=method, model=model: _in_inference_mode(
                    lambda: pgl.attribute(model, x, method=method)
                ),
                r"inference",
                equal_to(ref),
                model,
                x,
            )
        )
    return cases


def _inference(x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return x.clone()


def _in_inference_mode(fn: Callable[[], Any]) -> Any:
    with torch.inference_mode():
        return fn()


def _with_grad(x: torch.Tensor) -> torch.Tensor:
    t = x.clone().requires_grad_(True)
    t.grad = torch.ones_like(t)
    return t


def target_cases() -> list[Case]:
    cases: list[Case] = []
    x = _x()
    for method in METHODS_FOR_TARGETS:
        model = tiny()
        targets: list[tuple[str, Any, str, Any]] = [
            ("string '2'", "2", r"target", None),
            ("class name 'cat'", "cat", r"target", None),
            ("2**70", 2**70, r"target|range", None),
            ("-(2**70)", -(2**70), r"target|range", None),
            ("-1", -1, r"target|range", None),
            ("K (one past the last class)", 4, r"target|range", None),
            ("float 1.5", 1.5, r"target|integer", None),
            ("bool True", True, r"target|bool", None),
            ("list of wrong length", [0, 1], r"target|entries|samples", None),
            ("2-D tensor", torch.zeros(3, 1, dtype=torch.long), r"target|1-D", None),
            ("float tensor", torch.zeros(3), r"target|integer", None),
            ("list of strings", ["a", "b", "c"], r"target", None),
            ("list holding 2**70", [2**70, 0, 0], r"target|range|overflow", None),
            ("numpy int64 scalar (valid)", np.int64(2), "", 2),
            ("0-d tensor (valid)", torch.tensor(1), "", 1),
        ]
        for name, target, keywords, same_as in targets:
            oracle = None
            if same_as is not None:
                oracle = equal_to(
                    lambda m=model, me=method, t=same_as: pgl.attribute(m, x, t, method=me)
                )
            cases.append(
                Case(
                    "targets",
                    f"{method}: target {name}",
                    lambda m=model, me=method, t=target: pgl.attribute(m, x, t, method=me),
                    keywords,
                    oracle,
                    model,
                    x,
                )
            )
    return cases


def model_cases() -> list[Case]:
    cases: list[Case] = []
    x = _x()
    for method in METHODS_FOR_MODELS:
        for kind in ("tuple", "dict", "list", "1d", "3d", "int", "scalar", "fewer_rows", "none"):
            model = Wrapped(kind).eval()
            cases.append(
                Case(
                    "models",
                    f"{method}: output {kind}",
                    _method_call(method, model, x),
                    r"model returned|logits|\(N, K\)",
                    None,
                    model,
                    x,
                )
            )

        def add(name, model, keywords="", oracle=None, warning=None, method=method):
            cases.append(
                Case(
                    "models",
                    f"{method}: {name}",
                    _method_call(method, model, x),
                    keywords,
                    oracle,
                    model,
                    x,
                    warning,
                )
            )

        add("train mode", tiny().train(), r"training mode|eval\(\)")
        with torch.device("meta"):
            meta = TinyCNN().eval()
        add("meta-device model", meta, r"meta")
        with torch.inference_mode():
            inf_model = tiny()
        add("parameters made in inference_mode", inf_model, r"inference")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(tiny(), x)
        if method == "gradient":  # a plain gradient through TorchScript is fine
            add(
                "torch.jit.trace'd model",
                traced,
                r"TorchScript|trace",
                equal_to(lambda: pgl.attribute(tiny(), x, method="gradient"), atol=1e-6),
            )
        else:
            add("torch.jit.trace'd model", traced, r"TorchScript|trace")
        cases.append(
            Case(
                "models",
                f"{method}: model class, not instance",
                lambda me=method: pgl.attribute(TinyCNN, x, method=me),
                r"instance|class",
                None,
            )
        )
        cases.append(
            Case(
                "models",
                f"{method}: a function, not a module",
                lambda me=method: pgl.attribute(lambda t: t, x, method=me),
                r"nn\.Module",
            )
        )
        if method == "prunegrad":
            add("no ReLU at all", NoReLU().eval(), r"no ReLU|ReLU-family")
        elif method == "gradient":
            add(
                "no ReLU at all (a gradient is fine)",
                NoReLU().eval(),
                "",
                lambda r: isinstance(r, torch.Tensor) and r.shape == x.shape,
            )
        if method in ("prunegrad", "guided_backprop"):
            for base in (MixedLeaky, MixedGELU):  # a class per case: the warning is once per class
                cls = type(f"{base.__name__}For{method.title()}", (base,), {})
                m = cls().eval()
                add(
                    f"{cls.__name__} (non-ReLU activations)",
                    m,
                    "",
                    lambda r: isinstance(r, torch.Tensor),
                    "UnhandledActivationWarning",
                )
        inplace = tiny(inplace=True)
        add(
            "in-place ReLUs",
            inplace,
            "",
            equal_to(lambda me=method: pgl.attribute(tiny(), x, method=me)),
        )
        first = _first_relu(inplace=True)
        add(
            "first op an in-place ReLU on the input",
            first,
            "",
            equal_to(lambda me=method: pgl.attribute(_first_relu(inplace=False), x, method=me)),
        )
        add(
            "forward writes into its input (x.relu_())",
            InplaceOnInput().eval(),
            "",
            equal_to(
                lambda me=method: pgl.attribute(InplaceOnInput(inplace=False).eval(), x, method=me)
            ),
        )
        add("NaN in the weights", NaNWeights().eval(), r"NaN|inf|finite")
    return cases


def option_cases() -> list[Case]:
    x = _x()
    m = tiny()
    zero = tiny()
    zero.default_sparsity = 0.0
    opts: list[tuple[str, Callable[[], Any], str, Any]] = [
        ("sparsity 1.0", lambda: pgl.PruneGrad(m, sparsity=1.0), r"sparsity", None),
        ("sparsity -0.1", lambda: pgl.PruneGrad(m, sparsity=-0.1), r"sparsity", None),
        ("sparsity '0.5'", lambda: pgl.PruneGrad(m, sparsity="0.5"), r"sparsity", None),
        ("sparsity nan", lambda: pgl.PruneGrad(m, sparsity=float("nan")), r"sparsity", None),
        ("sparsity True", lambda: pgl.PruneGrad(m, sparsity=True), r"sparsity", None),
        (
            "model.default_sparsity = 0.0",
            lambda: pgl.attribute(zero, x),
            "",
            equal_to(lambda: pgl.attribute(zero, x, method="gradient"), atol=1e-6),
        ),
        ("threshold 'local'", lambda: pgl.PruneGrad(m, threshold="local"), r"threshold", None),
        ("scoring 'grad'", lambda: pgl.PruneGrad(m, scoring="grad"), r"scoring", None),
        ("inner 'gradcam'", lambda: pgl.PruneGrad(m, inner="gradcam"), r"inner", None),
        (
            "IG steps 0",
            lambda: pgl.attribute(m, x, method="integrated_gradients", steps=0),
            r"steps",
            None,
        ),
        (
            "SmoothGrad samples 0",
            lambda: pgl.attribute(m, x, method="smoothgrad", samples=0),
            r"samples",
            None,
        ),
        (
            "SmoothGrad noise -1",
            lambda: pgl.attribute(m, x, method="smoothgrad", noise_level=-1),
            r"noise",
            None,
        ),
        ("calibrate tol=0", lambda: pgl.calibrate_sparsity(m, x, tol=0), r"tol", None),
        ("calibrate tol=-1", lambda: pgl.calibrate_sparsity(m, x, tol=-1), r"tol", None),
        (
            "calibrate target_change 0",
            lambda: pgl.calibrate_sparsity(m, x, target_change=0),
            r"target_change",
            None,
        ),
        (
            "calibrate target_change 1.5",
            lambda: pgl.calibrate_sparsity(m, x, target_change=1.5),
            r"target_change",
            None,
        ),
        (
            "unknown method name",
            lambda: pgl.attribute(m, x, method="prunegrad2"),
            r"unknown|known methods",
            None,
        ),
        (
            "prunegrad_random with scoring='taylor'",
            lambda: pgl.attribute(m, x, method="prunegrad_random", scoring="taylor"),
            r"fixes|scoring",
            None,
        ),
        (
            "Grad-CAM layer name that does not exist",
            lambda: pgl.attribute(m, x, method="gradcam", layer="conv9"),
            r"submodule|conv9",
            None,
        ),
        (
            "Grad-CAM layer a string of a linear layer",
            lambda: pgl.attribute(m, x, method="gradcam", layer="fc"),
            r"4-D|feature map|convolutional",
            None,
        ),
        (
            "Grad-CAM layer an int",
            lambda: pgl.attribute(m, x, method="gradcam", layer=3),
            r"layer",
            None,
        ),
        (
            "unknown option",
            lambda: pgl.attribute(m, x, method="gradient", steps=3),
            r"steps|argument",
            None,
        ),
        (
            "PruneGrad alphas 1 (PruneInt)",
            lambda: pgl.attribute(m, x, method="pruneint", alphas=1),
            r"alphas",
            None,
        ),
        ("masks from another model", lambda: _foreign_masks(m, x), r"mask", None),
    ]
    return [Case("options", name, fn, kw, oracle, m, x) for name, fn, kw, oracle in opts]


def _foreign_masks(model: nn.Module, x: torch.Tensor) -> Any:
    other = tiny(seed=1)
    masks = pgl.masks_from_scores(pgl.neuron_scores(other, torch.randn(3, 3, 16, 16)), 0.5)
    with pgl.apply_masks(model, masks):
        return model(x)


def thread_cases() -> list[Case]:
    cases = []
    for method in ("prunegrad", "prunegrad_random", "guided_backprop", "gradcam"):
        model = tiny()
        cases.append(
            Case(
                "threads",
                f"{method}: 2 threads x 20 calls on one model",
                lambda me=method, m=model: _threads(m, me),
                "",
                lambda wrong: wrong == 0,
                model,
            )
        )
    return cases


def _threads(model: nn.Module, method: str) -> int:
    inputs = [_x(2, seed=s) for s in range(3)]
    reference = [pgl.attribute(model, x, method=method) for x in inputs]
    wrong = [0]
    barrier = threading.Barrier(2)

    def work(t: int) -> None:
        barrier.wait()
        for k in range(20):
            i = (k + t) % 3
            try:
                if not torch.equal(pgl.attribute(model, inputs[i], method=method), reference[i]):
                    wrong[0] += 1
            except Exception:  # noqa: BLE001 - a false error is a wrong answer here
                wrong[0] += 1

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return wrong[0]


def data_cases() -> list[Case]:
    from prunegrad_lite.data import load_dataset, load_photos

    items: list[tuple[str, Callable[[], Any], str]] = [
        (
            "load_dataset subset=None",
            lambda: load_dataset("fashion_mnist", "test", subset=None),
            r"subset",
        ),
        (
            "load_dataset subset='no'",
            lambda: load_dataset("fashion_mnist", "test", subset="no"),
            r"subset",
        ),
        (
            "load_dataset subset=0",
            lambda: load_dataset("fashion_mnist", "test", subset=0),
            r"subset",
        ),
        ("load_dataset split='val'", lambda: load_dataset("fashion_mnist", "val"), r"split"),
        ("load_dataset name 'mnist'", lambda: load_dataset("mnist"), r"unknown dataset|known"),
        (
            "load_photos unknown name",
            lambda: load_photos(["no_such_photo"]),
            r"no_such_photo|unknown|known",
        ),
        (
            "load_photos a string, not a list",
            lambda: load_photos("cat"),
            r"list|sequence|names|unknown|known",
        ),
    ]
    return [Case("data", name, fn, kw) for name, fn, kw in items]


# --- the cache


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _roar_setup(folder: Path):
    from prunegrad_lite.benchmarks.roar import RoarConfig, roar
    from prunegrad_lite.training import TrainConfig

    gen = torch.Generator().manual_seed(0)

    def data(n):
        y = torch.randint(0, 2, (n,), generator=gen)
        x = torch.randn(n, 1, 8, 8, generator=gen) * 0.1
        x[:, 0, :2, :2] += y.view(-1, 1, 1).float()
        return x, y

    train, test = data(96), data(32)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Model().eval()
    recipe = TrainConfig(epochs=1, batch_size=32, lr=0.05, augment=False, num_classes=2)
    config = RoarConfig(fractions=(0.5,), seeds=(0,), recipe=recipe)

    def run():
        return roar(
            model,
            train,
            test,
            ["gradient", "random"],
            config,
            cache_dir=folder,
            device="cpu",
            progress=False,
            model_fn=_Linear,
        )

    return run


def cache_cases() -> list[Case]:
    cases = []

    def damage_case(name: str, pattern: str, damage: Callable[[Path], None]) -> Case:
        def run():
            with tempfile.TemporaryDirectory() as tmp:
                roar_run = _roar_setup(Path(tmp))
                first = roar_run()
                files = sorted(Path(tmp).rglob(pattern))
                damage(files[0])
                again = roar_run()
                third = roar_run()
                return first, again, third, files[0].name

        def oracle(out):
            first, again, third, _ = out
            return again.scores == first.scores == third.scores

        return Case(
            "cache", name, run, r"\.json|\.pt|cache file", oracle, want_warning="CacheWarning"
        )

    def truncate(p: Path) -> None:
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])

    cell = "t0.5000_*.json"
    cases.append(damage_case("ROAR cell truncated", cell, truncate))
    cases.append(damage_case("ROAR cell empty", cell, lambda p: p.write_bytes(b"")))
    cases.append(damage_case("ROAR cell holds {}", cell, lambda p: p.write_text("{}")))
    cases.append(damage_case("ROAR cell holds a list", cell, lambda p: p.write_text("[0.5]")))
    cases.append(
        damage_case("ROAR cell binary garbage", cell, lambda p: p.write_bytes(bytes(range(256))))
    )
    cases.append(damage_case("ROAR maps .pt truncated", "*.pt", truncate))
    cases.append(damage_case("ROAR maps .pt empty", "*.pt", lambda p: p.write_bytes(b"")))
    cases.append(damage_case("ROAR maps .pt a dict", "*.pt", lambda p: torch.save({"a": 1}, p)))
    cases.append(
        damage_case(
            "ROAR maps .pt wrong shape",
            "*.pt",
            lambda p: torch.save(torch.zeros(2, 2, dtype=torch.int16), p),
        )
    )

    def result_load(text: str) -> Callable[[], Any]:
        def run():
            from prunegrad_lite.benchmarks import BenchmarkResult

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "sanity_model.json"
                path.write_text(text)
                return BenchmarkResult.load(path)

        return run

    for name, text in [
        ("truncated", '{"benchmark": "pixel", "mo'),
        ("empty", ""),
        ("{}", "{}"),
        ("a list", "[1]"),
    ]:
        cases.append(
            Case(
                "cache",
                f"BenchmarkResult.load of a {name} file",
                result_load(text),
                r"sanity_model\.json",
            )
        )
    return cases


# --- the command line


class _CLICrash(Exception):
    """The command line ended in a traceback (an exception escaped ``main``)."""


def _cli(argv: list[str], keywords: str) -> Callable[[], Any]:
    def run():
        from prunegrad_lite.cli import main

        err, out = io.StringIO(), io.StringIO()
        env = os.environ.pop("PRUNEGRAD_LITE_DEBUG", None)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = main(argv)
        except SystemExit as stop:
            code = stop.code
        except Exception as exc:  # noqa: BLE001 - a traceback for the user
            raise _CLICrash(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if env is not None:
                os.environ["PRUNEGRAD_LITE_DEBUG"] = env
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        if code == 0:
            return out.getvalue()
        if any("Traceback" in line for line in lines):
            raise _CLICrash("traceback printed")
        message = lines[-1] if lines else f"exit {code} without a message"
        raise ValueError(message)

    return run


def cli_cases(tmp: Path) -> list[Case]:
    notes = tmp / "notes.txt"
    notes.write_text("my notes\n")
    blocker = tmp / "blocker"
    blocker.write_text("a file")
    quick = ["--methods", "gradient"]
    items = [
        (
            "reproduce --weights notes.txt",
            [
                "reproduce",
                "--weights",
                str(notes),
                "--benchmark",
                "sanity",
                "--model",
                "fashion_mnist",
                "--out",
                str(tmp / "r1"),
                "--no-progress",
            ],
            r"notes\.txt",
        ),
        (
            "reproduce --weights missing.pt",
            [
                "reproduce",
                "--weights",
                str(tmp / "missing.pt"),
                "--benchmark",
                "sanity",
                "--model",
                "fashion_mnist",
                "--out",
                str(tmp / "r2"),
                "--no-progress",
            ],
            r"missing\.pt",
        ),
        (
            "reproduce --out is a file",
            [
                "reproduce",
                "--benchmark",
                "sanity",
                "--model",
                "fashion_mnist",
                "--out",
                str(blocker),
                "--no-progress",
            ],
            r"--out|blocker",
        ),
        (
            "reproduce --imagenet-images 0",
            ["reproduce", "--imagenet-images", "0", "--out", str(tmp / "r3")],
            r"imagenet",
        ),
        (
            "reproduce --methods bogus",
            ["reproduce", "--methods", "bogus", "--out", str(tmp / "r4")],
            r"bogus",
        ),
        (
            "explain --out inside a file",
            ["explain", *quick, "--out", str(blocker / "m.png")],
            r"--out|blocker",
        ),
        ("explain --out is a folder", ["explain", *quick, "--out", str(tmp)], r"--out|folder"),
        (
            "explain --photo with the Fashion-MNIST model",
            ["explain", *quick, "--photo", "cat", "--out", str(tmp / "e1.png")],
            r"--photo|photo",
        ),
        (
            "explain --methods with a typo",
            ["explain", "--methods", "gradient,gradcamm", "--out", str(tmp / "e2.png")],
            r"gradcamm",
        ),
        (
            "explain --index out of range",
            ["explain", *quick, "--index", "99999", "--out", str(tmp / "e3.png")],
            r"index",
        ),
        (
            "explain --sparsity 1.5",
            ["explain", *quick, "--sparsity", "1.5", "--out", str(tmp / "e4.png")],
            r"sparsity",
        ),
        (
            "explain --device cuda9",
            ["explain", *quick, "--device", "cuda:9", "--out", str(tmp / "e5.png")],
            r"device|cuda",
        ),
        (
            "explain --out with an unknown extension",
            ["explain", *quick, "--out", str(tmp / "e6.xyz")],
            r"xyz|format",
        ),
        (
            "train --out is a folder",
            ["train", "--out", str(tmp), "--epochs", "1", "--no-progress"],
            r"--out|folder",
        ),
        ("train --epochs 0", ["train", "--epochs", "0"], r"epochs|positive"),
        ("no command", [], r"command|required"),
        ("unknown command", ["explode"], r"invalid choice|explode"),
    ]
    cases = [Case("cli", name, _cli(argv, kw), kw) for name, argv, kw in items]

    def out_no_ext():
        out = tmp / "maps_noext"
        printed = _cli(["explain", *quick, "--index", "0", "--out", str(out)], "")()
        written = [p.name for p in tmp.glob("maps_noext*")]
        return printed, written, out

    cases.append(
        Case(
            "cli",
            "explain --out without extension names the file it wrote",
            out_no_ext,
            "",
            lambda r: (
                any(f"wrote {p}" in r[0] for p in [r[2].with_suffix(".png")])
                and r[1] == ["maps_noext.png"]
            ),
        )
    )
    return cases


def all_cases(tmp: Path) -> list[Case]:
    return [
        *input_cases(),
        *target_cases(),
        *model_cases(),
        *option_cases(),
        *thread_cases(),
        *data_cases(),
        *cache_cases(),
        *cli_cases(tmp),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--show",
        default="cryptic,silent,crash,mutation",
        help="outcomes to list (comma separated; 'all'; '' for none)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every case's outcome here")
    parser.add_argument("--only", default=None, help="run only categories (comma separated)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cases = all_cases(Path(tmp))
        except Exception:  # building a case must never fail
            traceback.print_exc()
            return 2
        if args.only:
            keep = set(args.only.split(","))
            cases = [c for c in cases if c.category in keep]
        for case in cases:
            classify(case)
    seconds = time.perf_counter() - t0
    counts = Counter(c.outcome for c in cases)
    by_category: dict[str, Counter] = {}
    for c in cases:
        by_category.setdefault(c.category, Counter())[c.outcome] += 1
    print(f"prunegrad_lite from {Path(pgl.__file__).parent}")
    print(f"{len(cases)} cases in {seconds:.0f} s (load {os.getloadavg()[0]:.1f})")
    header = f"{'category':<10}" + "".join(f"{o:>10}" for o in OUTCOMES) + f"{'cases':>8}"
    print(header)
    for cat, cnt in by_category.items():
        print(f"{cat:<10}" + "".join(f"{cnt[o]:>10}" for o in OUTCOMES) + f"{sum(cnt.values()):>8}")
    print(f"{'all':<10}" + "".join(f"{counts[o]:>10}" for o in OUTCOMES) + f"{len(cases):>8}")
    show = set(OUTCOMES) if args.show == "all" else {s for s in args.show.split(",") if s}
    for c in cases:
        if c.outcome in show:
            print(f"  [{c.outcome}] {c.category}: {c.name}: {c.detail}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"category": c.category, "name": c.name, "outcome": c.outcome, "detail": c.detail}
            for c in cases
        ]
        args.json.write_text(json.dumps({"counts": dict(counts), "cases": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
