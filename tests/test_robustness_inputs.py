"""Issue 17, findings 2, 3, 4 (LeakyReLU) and 8: inputs never aliased, bad inputs refused by name.

Each test failed before the fix (``PYTHONPATH=<main checkout>`` runs them against it).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunegrad_lite as pgl
from prunegrad_lite.attribution.activations import UnhandledActivationWarning
from prunegrad_lite.attribution.registry import METHODS
from tests.helpers import tiny_cnn

ALL_METHODS = list(METHODS)


def _x(n: int = 3, seed: int = 0, c: int = 3) -> torch.Tensor:
    return torch.randn(n, c, 8, 8, generator=torch.Generator().manual_seed(seed))


class InplaceFirst(nn.Module):
    """A CNN whose very first op is an in-place ReLU on the input (a careless but legal model)."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.pre = nn.ReLU(inplace=inplace)
        self.body = tiny_cnn()

    def forward(self, x):
        return self.body(self.pre(x))


# ------------------------------------------------------------------------- finding 2


def test_default_sparsity_zero_is_kept() -> None:
    model = tiny_cnn()
    model.default_sparsity = 0.0
    pg = pgl.PruneGrad(model)
    assert pg.sparsity == 0.0
    x = _x()
    assert torch.allclose(pg.attribute(x), pgl.Gradient(model).attribute(x), atol=1e-6)


# ------------------------------------------------------------------------- finding 3


@pytest.mark.parametrize("method", ALL_METHODS)
def test_caller_input_untouched_by_inplace_first_relu(method: str) -> None:
    torch.manual_seed(0)
    model = InplaceFirst().eval()
    x = _x()
    before = x.clone()
    ref_model = InplaceFirst(inplace=False).eval()
    ref_model.load_state_dict(model.state_dict())
    reference = pgl.attribute(ref_model, x.clone(), method=method)
    out = pgl.attribute(model, x, method=method)
    assert torch.equal(x, before), "the caller's input was changed"
    assert torch.equal(out, reference)
    assert model.pre.inplace is True


@pytest.mark.parametrize("method", ["gradient", "prunegrad", "guided_backprop"])
def test_result_is_not_a_view_of_the_input(method: str) -> None:
    model = tiny_cnn()
    x = _x()
    out = pgl.attribute(model, x, method=method)
    assert out.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


def test_explain_and_scores_leave_input_untouched() -> None:
    model = InplaceFirst().eval()
    x = _x()
    before = x.clone()
    pgl.PruneGrad(model, sparsity=0.5).explain(x)
    pgl.neuron_scores(model, x)
    pgl.calibrate_sparsity(model, x)
    assert torch.equal(x, before)


# ------------------------------------------------------------------------- finding 8: outputs


class _Wrap(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.body = tiny_cnn()

    def forward(self, x):
        y = self.body(x)
        if self.kind == "tuple":
            return y, y
        if self.kind == "dict":
            return {"logits": y}
        if self.kind == "1d":
            return y[:, 0]
        if self.kind == "3d":
            return y.unsqueeze(-1)
        if self.kind == "int":
            return y.argmax(1, keepdim=True)
        raise AssertionError


@pytest.mark.parametrize("kind", ["tuple", "dict", "1d", "3d", "int"])
@pytest.mark.parametrize("method", ["gradient", "prunegrad", "guided_backprop", "gradcam"])
def test_model_output_not_logits_is_named(kind: str, method: str) -> None:
    model = _Wrap(kind).eval()
    with pytest.raises((TypeError, ValueError), match="the model returned"):
        pgl.attribute(model, _x(), method=method)


# ------------------------------------------------------------------------- finding 8: devices, modes


def test_meta_model_and_inputs() -> None:
    with torch.device("meta"):
        meta_model = tiny_cnn()
    with pytest.raises(ValueError, match="meta device"):
        pgl.attribute(meta_model, _x(), method="gradient")
    with pytest.raises(ValueError, match="meta device"):
        pgl.attribute(tiny_cnn(), torch.empty(2, 3, 8, 8, device="meta"), method="prunegrad")


@pytest.mark.parametrize("method", ["gradient", "prunegrad", "gradcam"])
def test_inference_mode_inputs_and_calls_work(method: str) -> None:
    model = tiny_cnn()
    x = _x()
    reference = pgl.attribute(model, x, method=method)
    with torch.inference_mode():
        x_inf = x.clone()
        inside = pgl.attribute(model, x_inf, method=method)
    assert x_inf.is_inference()
    assert torch.equal(pgl.attribute(model, x_inf, method=method), reference)
    assert torch.equal(inside, reference)


def test_inference_mode_model_is_named() -> None:
    with torch.inference_mode():
        model = tiny_cnn()
    with pytest.raises(ValueError, match="inference_mode"):
        pgl.attribute(model, _x(), method="gradient")


def test_explain_inside_inference_mode_is_named() -> None:
    pg = pgl.PruneGrad(tiny_cnn())
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        pg.explain(_x())


# ------------------------------------------------------------------------- finding 8: targets


@pytest.mark.parametrize("target", ["3", "cat", 2**70, -(2**70), [2**70], ["a"], 4, -1])
def test_bad_targets_are_named(target) -> None:
    with pytest.raises((TypeError, ValueError), match="target"):
        pgl.attribute(tiny_cnn(), _x(), target=target, method="prunegrad")


# ------------------------------------------------------------------------- finding 8: TorchScript


@pytest.mark.parametrize("method", ["prunegrad", "guided_backprop", "gradcam", "pruneint"])
def test_traced_model_is_named(method: str) -> None:
    traced = torch.jit.trace(tiny_cnn(), _x())
    with pytest.raises(TypeError, match="TorchScript"):
        pgl.attribute(traced, _x(), method=method)


def test_model_containing_traced_part_is_named() -> None:
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.jit.trace(tiny_cnn(), _x())

        def forward(self, x):
            return F.relu(self.inner(x))

    with pytest.raises(TypeError, match="TorchScript"):
        pgl.attribute(Outer().eval(), _x(), method="guided_backprop")


# ------------------------------------------------------------------------- finding 8: dtypes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("method", ["gradient", "prunegrad"])
def test_other_float_dtypes_are_converted(dtype, method: str) -> None:
    model = tiny_cnn()
    x = _x().to(dtype)
    out = pgl.attribute(model, x, method=method)
    assert out.dtype == torch.float32
    assert torch.equal(out, pgl.attribute(model, x.float(), method=method))
    assert x.dtype == dtype


def test_calibrate_tol_zero_is_named() -> None:
    with pytest.raises(ValueError, match="tol"):
        pgl.calibrate_sparsity(tiny_cnn(), _x(), tol=0)


def test_model_class_instead_of_instance() -> None:
    with pytest.raises(TypeError, match="instance"):
        pgl.attribute(type(tiny_cnn()), _x(), method="gradient")


# ------------------------------------------------------------------------- finding 4: LeakyReLU


def test_mixed_leaky_relu_warns_once() -> None:
    class Mixed(nn.Module):  # a class of its own: the warning is once per model class
        def __init__(self):
            super().__init__()
            self.body = tiny_cnn()
            self.leaky = nn.LeakyReLU(0.1)

        def forward(self, x):
            return self.body(self.leaky(x))

    model = Mixed().eval()
    with pytest.warns(UnhandledActivationWarning, match="leaky_relu"):
        pgl.attribute(model, _x(), method="prunegrad")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnhandledActivationWarning)
        pgl.attribute(model, _x(), method="prunegrad")  # not again


def test_pure_relu_model_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnhandledActivationWarning)
        pgl.attribute(tiny_cnn(), _x(), method="prunegrad")
