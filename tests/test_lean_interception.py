"""The fused masked activation and the lean interception PruneGrad runs with (issue 15, memory).

Oracles: the unfused product ``activation(x) * m`` under torch.autograd in float64, and the
same network written without in-place operations.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunegrad_lite as pgl
from prunegrad_lite.attribution import lean as lean_module
from prunegrad_lite.attribution.activations import intercept_activations
from prunegrad_lite.attribution.lean import interception_copies, masked_activation


@pytest.mark.parametrize("kind", ["relu", "relu6"])
@pytest.mark.parametrize("copies", [1, 3])
def test_masked_activation_equals_the_unfused_product_in_float64(kind, copies):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(copies * 4, 5, 6, generator=gen, dtype=torch.float64) * 5).requires_grad_()
    with torch.no_grad():  # values exactly at the kinks: 0 and 6
        x.view(-1)[:4] = torch.tensor([0.0, 6.0, -0.0, 3.0], dtype=torch.float64)
    m = (torch.rand(4, 5, 6, generator=gen) > 0.4).view(torch.uint8)
    act = torch.relu if kind == "relu" else F.relu6
    expected = (act(x).view(copies, 4, 5, 6) * m).view(x.shape)
    got = masked_activation(x, m, kind)
    assert torch.equal(got, expected)
    up = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    (g_expected,) = torch.autograd.grad((expected * up).sum(), x)
    (g_got,) = torch.autograd.grad((got * up).sum(), x)
    assert torch.equal(g_got, g_expected)


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float64, torch.bfloat16],  # bfloat16: torch's product
)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "copies", "in_place"])
def test_masked_activation_forward_equals_the_product_on_every_route(dtype, layout):
    """The mask product (NumPy's on the CPU for float32/64) equals torch's ``relu(x) * m``."""
    gen = torch.Generator().manual_seed(1)
    k = 3 if layout == "copies" else 1
    x = torch.randn(k * 4, 6, 5, 7, generator=gen).to(dtype)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    m = (torch.rand(4, 6, 5, 7, generator=gen) > 0.5).view(torch.uint8)
    expected = (torch.relu(x).view(k, 4, 6, 5, 7) * m).view(x.shape)
    x_in = x.clone()
    got = masked_activation(x_in, m, "relu", in_place=layout == "in_place")
    assert got.dtype == dtype
    assert torch.equal(got, expected)
    if layout == "in_place":
        assert got.data_ptr() == x_in.data_ptr()  # written into x's memory
    else:
        assert torch.equal(x_in, x)  # x itself untouched


class Clean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.double()

    def forward(self, x):
        h = 2 * F.relu(self.fc1(x))
        return self.fc3(F.relu(self.fc2(h)) + 1)


class ModifiesAfter(Clean):
    """The same function, but it modifies what the activations hand back, in place."""

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h.mul_(2)  # an out-of-place call's result, modified afterwards
        g = F.relu(self.fc2(h), inplace=True)
        g += 1  # an in-place call's result, modified afterwards
        return self.fc3(g)


class SideEffectOnly(Clean):
    """Relies on the in-place side effect and ignores the returned tensor."""

    def forward(self, x):
        z = self.fc1(x)
        F.relu(z, inplace=True)
        z = 2 * z
        y = self.fc2(z)
        torch.relu_(y)
        return self.fc3(y + 1)


@pytest.mark.parametrize("variant", [ModifiesAfter, SideEffectOnly])
def test_prunegrad_is_right_on_models_that_touch_activations_in_place(variant):
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    clean, other = Clean().eval(), variant().eval()
    for sparsity in (0.0, 0.5, 0.8):
        expected = pgl.PruneGrad(clean, sparsity=sparsity).explain(x, return_scores=True)
        got = pgl.PruneGrad(other, sparsity=sparsity).explain(x, return_scores=True)
        torch.testing.assert_close(got.attribution, expected.attribution, rtol=0, atol=1e-12)
        for a, b in zip(got.scores, expected.scores):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # the model that modifies its activations afterwards was detected and rerun with copies
    assert (other in lean_module._MODIFYING_MODELS) == (variant is ModifiesAfter)
    assert clean not in lean_module._MODIFYING_MODELS


def test_lean_interception_hands_back_the_handlers_tensor_and_keeps_the_side_effect():
    model = SideEffectOnly().eval()
    x = torch.randn(2, 6, dtype=torch.float64)
    seen = []

    def record(site, out):
        seen.append(out)
        return out

    with interception_copies("lean"), intercept_activations(model, record) as sites:
        y = model(x)
    assert len(sites) == 2
    torch.testing.assert_close(y, Clean().eval()(x), rtol=0, atol=1e-12)


def test_interception_copies_refuses_unknown_modes():
    with pytest.raises(ValueError, match="copies must be one of"):
        with interception_copies("fast"):
            pass
