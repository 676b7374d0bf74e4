"""The baselines and controls against oracles (autograd, Captum, hand-computed networks), and the
registry matrix: every method on four torchvision architectures, leaving the model untouched."""

from __future__ import annotations

import copy

import captum.attr
import pytest
import torch
import torchvision
from helpers import TinyFunctionalNet, hook_count, tiny_cnn
from torch import nn

import prunegrad_lite as pgl
from prunegrad_lite.attribution.fullgrad import fullgrad_decomposition
from prunegrad_lite.attribution.registry import METHODS

# ----------------------------------------------------------------------------- helpers


def snapshot(model: nn.Module) -> dict:
    """Everything an attribution call must leave as it found it."""
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [p.grad for p in model.parameters()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    state = model.state_dict()
    assert state.keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(state[k], v), f"{k} changed"
    assert [m.training for m in model.modules()] == before["training"]
    assert [p.requires_grad for p in model.parameters()] == before["requires_grad"]
    assert all(p.grad is g for p, g in zip(model.parameters(), before["grad"]))
    assert [getattr(m, "inplace", None) for m in model.modules()] == before["inplace"]
    assert hook_count(model) == 0, "hooks left on the model"
    assert torch._C._len_torch_function_stack() == 0, "a TorchFunctionMode was left active"


def autograd_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[torch.arange(len(x)), target].sum(), x)
    return g


@pytest.fixture
def cnn64() -> nn.Module:
    return tiny_cnn(dtype=torch.float64)


@pytest.fixture
def x64() -> torch.Tensor:
    return torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


# ----------------------------------------------------------------------------- gradient family


def test_gradient_equals_autograd(cnn64, x64):
    t = cnn64(x64).argmax(1)
    torch.testing.assert_close(pgl.Gradient(cnn64).attribute(x64), autograd_gradient(cnn64, x64, t))
    got = pgl.Gradient(cnn64).attribute(x64, target=2)
    torch.testing.assert_close(got, autograd_gradient(cnn64, x64, torch.full((3,), 2)))


def test_integrated_gradients_matches_captum(cnn64, x64):
    t = torch.tensor([0, 3, 1])
    ours = pgl.IntegratedGradients(cnn64, steps=50).attribute(x64, t)
    theirs = captum.attr.IntegratedGradients(cnn64).attribute(
        x64, baselines=torch.zeros_like(x64), target=t, n_steps=50, method="riemann_middle"
    )
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_integrated_gradients_completeness(cnn64, x64):
    t = cnn64(x64).argmax(1)
    ig = pgl.IntegratedGradients(cnn64, steps=200).attribute(x64, t)
    rows = torch.arange(3)
    with torch.no_grad():
        delta = cnn64(x64)[rows, t] - cnn64(torch.zeros_like(x64))[rows, t]  # S(x) - S(0)
    err = (ig.flatten(1).sum(1) - delta).abs()
    assert (err <= 1e-2 * delta.abs()).all(), (err, delta)  # ReLU kinks: O(1/steps) error


def test_smoothgrad_without_noise_is_the_gradient_and_seeded(cnn64, x64):
    t = cnn64(x64).argmax(1)
    sg0 = pgl.SmoothGrad(cnn64, samples=4, noise_level=0.0).attribute(x64)
    torch.testing.assert_close(sg0, autograd_gradient(cnn64, x64, t))
    a = pgl.SmoothGrad(cnn64, samples=5, seed=3).attribute(x64)
    assert torch.equal(a, pgl.SmoothGrad(cnn64, samples=5, seed=3).attribute(x64))
    assert not torch.equal(a, pgl.SmoothGrad(cnn64, samples=5, seed=4).attribute(x64))
    sq = pgl.SmoothGradSquared(cnn64, samples=5, seed=3).attribute(x64)
    assert (sq >= 0).all() and not torch.equal(sq, a)


# ----------------------------------------------------------------------------- Guided Backprop


def test_guided_backprop_hand_computed_functional_relu():
    # x1 = (1, 1):  z = W1 x + b1 = (3, 0.5, -3), unit 3 off.  Target 0: dS/dh = W2[0] = (1, -2, 1)
    #   plain:  (1, -2, 0) -> W1^T (1, -2, 0) = (3, 0)
    #   guided: keep dS/dh > 0 and z > 0 -> (1, 0, 0) -> W1^T (1, 0, 0) = (1, 2)
    # x2 = (2, -1): z = (0, -2.5, 2), only unit 3 on.  Target 1: dS/dh = W2[1] = (0.5, 1, -1)
    #   plain:  (0, 0, -1) -> (-3, 1);   guided: -1 < 0 is stopped -> (0, 0)
    model = TinyFunctionalNet().double().eval()
    x = torch.tensor([[1.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    plain = torch.tensor([[3.0, 0.0], [-3.0, 1.0]], dtype=torch.float64)
    guided = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)

    torch.testing.assert_close(pgl.GuidedBackprop(model).attribute(x, target), guided)
    torch.testing.assert_close(pgl.Gradient(model).attribute(x, target), plain)
    # Captum overrides nn.ReLU modules only: through F.relu it silently gives the plain gradient
    captum_gb = captum.attr.GuidedBackprop(model).attribute(x.clone(), target=target)
    torch.testing.assert_close(captum_gb, plain)
    assert not torch.allclose(captum_gb, guided)


def test_guided_backprop_hand_computed_relu6():
    # x = (3, 3): z = (9, 0.5, 1); ReLU6 passes gradient only where 0 < z < 6: (0, 1, 1).
    # Target 0, dS/dh = (1, -2, 1): guided keeps (0, 0, 1) -> W1^T (0, 0, 1) = (3, -1);
    # plain (0, -2, 1) -> (5, -3).
    model = TinyFunctionalNet(act="relu6").double().eval()
    x = torch.tensor([[3.0, 3.0]], dtype=torch.float64)
    expected = torch.tensor([[3.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(pgl.GuidedBackprop(model).attribute(x, 0), expected)
    torch.testing.assert_close(
        pgl.Gradient(model).attribute(x, 0), torch.tensor([[5.0, -3.0]], dtype=torch.float64)
    )


@pytest.mark.parametrize("relu", ["functional", "inplace", "reused"])
def test_guided_backprop_same_for_every_way_of_writing_relu(relu, x64):
    reference = tiny_cnn("module", dtype=torch.float64)  # separate nn.ReLU modules: Captum's case
    expected = captum.attr.GuidedBackprop(reference).attribute(x64.clone(), target=1)
    ours_module = pgl.GuidedBackprop(reference).attribute(x64, 1)
    torch.testing.assert_close(ours_module, expected)
    variant = tiny_cnn(relu, dtype=torch.float64)  # same seed, same weights
    torch.testing.assert_close(pgl.GuidedBackprop(variant).attribute(x64, 1), expected)


# ----------------------------------------------------------------------------- Grad-CAM


def test_gradcam_matches_captum_and_is_nonnegative(cnn64, x64):
    t = torch.tensor([0, 1, 2])
    ours = pgl.GradCAM(cnn64).attribute(x64, t)  # default: the last 4-D ReLU output = relu2
    assert ours.shape == x64.shape and (ours >= 0).all()
    assert torch.equal(ours[:, 0], ours[:, 2])  # one map copied to every channel
    layer_cam = captum.attr.LayerGradCam(cnn64, cnn64.relu2).attribute(
        x64, target=t, relu_attributions=True
    )
    theirs = captum.attr.LayerAttribution.interpolate(layer_cam, (8, 8), "bilinear")  # (N, 1, 8, 8)
    torch.testing.assert_close(ours[:, :1], theirs)
    torch.testing.assert_close(pgl.GradCAM(cnn64, layer=cnn64.relu2).attribute(x64, t), ours)
    torch.testing.assert_close(pgl.GradCAM(cnn64, layer="relu2").attribute(x64, t), ours)
    # found by interception, so a functional, in-place or reused last ReLU gives the same map
    for relu in ("functional", "inplace", "reused"):
        variant = tiny_cnn(relu, dtype=torch.float64)
        torch.testing.assert_close(pgl.GradCAM(variant).attribute(x64, t), ours)
    # a hooked in-place module, or a reused one (its last call is used), too
    for relu in ("inplace", "reused"):
        variant = tiny_cnn(relu, dtype=torch.float64)
        torch.testing.assert_close(pgl.GradCAM(variant, layer="relu2").attribute(x64, t), ours)
        assert hook_count(variant) == 0


def test_gradcam_refuses_what_it_cannot_explain(x64):
    mlp = TinyFunctionalNet().eval()
    with pytest.raises(ValueError, match="image inputs"):
        pgl.GradCAM(mlp).attribute(torch.ones(2, 2))
    cnn = tiny_cnn(dtype=torch.float64)
    stray = nn.ReLU()  # not part of the model: never called
    with pytest.raises(ValueError, match="was not called"):
        pgl.GradCAM(cnn, layer=stray).attribute(x64)
    with pytest.raises(ValueError, match="4-D feature map"):
        pgl.GradCAM(cnn, layer=cnn.fc).attribute(x64)
    with pytest.raises(ValueError, match="no submodule"):
        pgl.GradCAM(cnn, layer="layer9")
    assert hook_count(cnn) == 0 and hook_count(stray) == 0


class _FailsOnCall(nn.Module):
    """Wraps a model; its forward number ``fail_at`` (and later ones) raises after the model ran."""

    def __init__(self, model: nn.Module, fail_at: int) -> None:
        super().__init__()
        self.model, self.calls, self.fail_at = model, 0, fail_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y = self.model(x)
        if self.calls >= self.fail_at:
            raise RuntimeError("boom")
        return y


# the hooked pass is Guided Backprop's and Grad-CAM's only one (it also gives the target), and
# FullGrad's second (the first finds the target)
@pytest.mark.parametrize("name, hooked", [("guided_backprop", 1), ("gradcam", 1), ("fullgrad", 2)])
def test_nothing_left_behind_when_the_forward_raises(name, hooked, x64):
    model = _FailsOnCall(tiny_cnn(bn=True, dtype=torch.float64), hooked).eval()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        METHODS[name](model).attribute(x64)
    assert model.calls == hooked
    assert_unchanged(model, before)
    if name == "gradcam":
        model.calls = 0
        with pytest.raises(RuntimeError, match="boom"):
            pgl.GradCAM(model, layer="model.relu2").attribute(x64)
        assert_unchanged(model, before)


# ----------------------------------------------------------------------------- FullGrad


@pytest.mark.parametrize("bn", [False, True], ids=["biases", "batchnorm"])
def test_fullgrad_completeness(bn, x64):
    model = tiny_cnn(bn=bn, dtype=torch.float64)
    t = torch.tensor([0, 1, 3])
    dec = pgl.FullGrad(model).decompose(x64, t)
    expected_layers = {"conv1", "conv2", "fc"} | ({"bn1", "bn2"} if bn else set())
    assert set(dec.bias_terms) == expected_layers
    torch.testing.assert_close(dec.scores, model(x64)[torch.arange(3), t])
    torch.testing.assert_close(dec.completeness_sum(x64), dec.scores, atol=1e-6, rtol=0)
    assert hook_count(model) == 0


def test_fullgrad_completeness_resnet18_inplace_relu_and_residuals():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=5).double().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the effective biases matter
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    t = torch.tensor([1, 4])
    dec = fullgrad_decomposition(model, x, t)
    assert len(dec.bias_terms) == 20 + 1  # 20 BatchNorm2d (incl. downsample) + fc
    torch.testing.assert_close(dec.completeness_sum(x), dec.scores, atol=1e-6, rtol=0)
    assert hook_count(model) == 0


def test_fullgrad_map_and_train_mode_batchnorm(x64):
    model = tiny_cnn(bn=True, dtype=torch.float64)
    fg = pgl.FullGrad(model).attribute(x64)
    assert fg.shape == x64.shape and (fg >= 0).all() and torch.isfinite(fg).all()
    assert torch.equal(fg[:, 0], fg[:, 1])
    # input term (3 channels) + conv1, bn1 (6) + conv2, bn2 (8), each entry rescaled to [0, 1]
    assert fg.max() <= 3 + 6 + 6 + 8 + 8
    model.bn2.train()  # root in eval mode, one BatchNorm not: refused, and nothing left behind
    before = snapshot(model)
    with pytest.raises(ValueError, match="training mode"):
        pgl.FullGrad(model).attribute(x64)
    assert_unchanged(model, before)


# ----------------------------------------------------------------------------- controls


def test_random_map_is_seeded(cnn64, x64):
    a = pgl.RandomMap(cnn64, seed=0).attribute(x64)
    assert a.shape == x64.shape and a.dtype == x64.dtype and (a >= 0).all() and (a < 1).all()
    assert torch.equal(a, pgl.RandomMap(cnn64, seed=0).attribute(x64))
    assert not torch.equal(a, pgl.RandomMap(cnn64, seed=1).attribute(x64))
    gen = torch.Generator().manual_seed(0)
    method = pgl.RandomMap(cnn64, seed=gen)
    assert torch.equal(method.attribute(x64), a)  # same stream as seed=0 ...
    assert not torch.equal(method.attribute(x64), a)  # ... and consumed


def test_edge_map_ignores_the_weights_and_finds_edges(cnn64):
    x = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    x[0, 1, :, 4:] = 1.0  # a vertical step in one channel of image 0; image 1 is flat
    edges = pgl.EdgeMap(cnn64).attribute(x)
    assert edges.shape == x.shape and torch.equal(edges[:, 0], edges[:, 2])
    assert (edges[1] == 0).all()  # a constant image has no edge, frame included (replicate pad)
    assert (edges[0, 0, :, 3:5] == 4).all() and (edges[0, 0, :, :3] == 0).all()  # Sobel: 1+2+1
    randomised = copy.deepcopy(cnn64)
    with torch.no_grad():
        for p in randomised.parameters():
            p.normal_(0, 0.1, generator=torch.Generator().manual_seed(5))
    y = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(pgl.EdgeMap(cnn64).attribute(y), pgl.EdgeMap(randomised).attribute(y))


# ----------------------------------------------------------------------------- registry

ALL_NAMES = [
    "gradient", "grad_x_input", "integrated_gradients", "smoothgrad", "smoothgrad_sq",
    "guided_backprop", "gradcam", "fullgrad", "random", "edge",
    "prunegrad", "prunegrad_random", "pruneint", "prunegrad_layer",
]  # fmt: skip

# smaller expansions keep the matrix fast; the defaults are tested on the small models above
FAST = {
    "integrated_gradients": {"steps": 3},
    "smoothgrad": {"samples": 2},
    "smoothgrad_sq": {"samples": 2},
    "pruneint": {"alphas": 2},
}


def test_registry_names_and_options():
    assert list(METHODS) == ALL_NAMES
    model = tiny_cnn()
    for name in ALL_NAMES:
        method = pgl.get_method(name, model)
        assert isinstance(method, pgl.Attribution) and method.name == name
    assert pgl.get_method("pruneint", model).scoring == "integrated_gradients"
    assert pgl.get_method("prunegrad_random", model, sparsity=0.5).scoring == "random"
    assert pgl.get_method("prunegrad_layer", model).threshold == "layer"
    assert isinstance(pgl.get_method("prunegrad_layer", model), pgl.PruneGrad)
    with pytest.raises(ValueError, match="fixes scoring"):
        pgl.get_method("prunegrad_random", model, scoring="taylor")
    with pytest.raises(ValueError, match="known methods: gradient, grad_x_input"):
        pgl.get_method("saliency", model)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(
        pgl.attribute(model, x, target=1, method="gradient"), pgl.Gradient(model).attribute(x, 1)
    )
    torch.testing.assert_close(
        pgl.attribute(model, x, sparsity=0.5), pgl.PruneGrad(model, sparsity=0.5).attribute(x)
    )


@pytest.mark.parametrize("name", ALL_NAMES)
def test_registry_bad_inputs_raise_clear_errors(name):
    model = tiny_cnn()
    before = snapshot(model)
    method = METHODS[name](model, **FAST.get(name, {}))
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="no batch dimension"):
        method.attribute(x[0])
    with pytest.raises(ValueError, match="channels"):
        method.attribute(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="out of range"):
        method.attribute(x, target=4)
    model.train()
    with pytest.raises(ValueError, match="training mode"):
        method.attribute(x)
    model.eval()
    assert_unchanged(model, before)


ARCHS = ["resnet18", "vgg11", "mobilenet_v2", "densenet121"]
SLOW = {("densenet121", "pruneint")}  # PruneInt runs the network once per layer: 121 layers


@pytest.fixture(scope="module")
def zoo():
    """``zoo(arch)``: a randomly initialised torchvision model and its snapshot, one at a time.

    Runs single-threaded (restored afterwards): these batches are tiny, and on a shared
    2-core machine OpenMP threads spin against other processes and cost ten times more.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cache: dict[str, tuple[nn.Module, dict]] = {}

    def get(arch: str) -> tuple[nn.Module, dict]:
        if arch not in cache:
            cache.clear()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = getattr(torchvision.models, arch)(weights=None).eval()
            cache[arch] = (model, snapshot(model))
        return cache[arch]

    yield get
    cache.clear()
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "arch,name",
    [
        pytest.param(a, n, marks=[pytest.mark.slow] if (a, n) in SLOW else [])
        for a in ARCHS
        for n in ALL_NAMES
    ],
)
def test_every_method_on_torchvision_models(zoo, arch, name):
    model, before = zoo(arch)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = METHODS[name](model, **FAST.get(name, {})).attribute(x, target=[1, 7])
    assert maps.shape == x.shape and maps.dtype == x.dtype
    assert torch.isfinite(maps).all()
    assert_unchanged(model, before)
