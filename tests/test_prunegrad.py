"""PruneGrad against oracles: autograd, an independent batch-1 reference, a hand-computed network."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import prunegrad_lite as pgl
from prunegrad_lite.attribution.activations import intercept_activations
from prunegrad_lite.attribution.pruning import apply_masks, masks_from_scores, neuron_scores
from helpers import hook_count

# ----------------------------------------------------------------------------- helpers


def _state(model: nn.Module) -> dict:
    return {
        "params": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [p.grad for p in model.parameters()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "hooks": hook_count(model),
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = _state(model)
    assert after["params"].keys() == before["params"].keys()
    for k in before["params"]:
        assert torch.equal(after["params"][k], before["params"][k]), k
    for key in ("training", "requires_grad", "inplace", "hooks"):
        assert after[key] == before[key], key
    assert all(a is b for a, b in zip(after["grad"], before["grad"]))
    assert torch._C._len_torch_function_stack() == 0


def plain_gradient(model, x, target):
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad(out[torch.arange(len(x)), target].sum(), x)
    return g


class TwoLayer(nn.Module):
    """x (2) -> Linear (4) -> ReLU -> Linear (2). Hand-computable (see the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 4, bias=False)
        self.fc2 = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]))
            self.fc2.weight.copy_(torch.tensor([[4.0, -1.0, 1.0, 5.0], [0.0, 0.0, 0.0, 0.0]]))

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


# -------------------------------------------------- an independent batch-1 reference of the spec


def reference_prunegrad(model, x1, target: int, sparsity: float, forward=None):
    """The spec written out with gates (no interception, no batching, numpy's percentile).

    Each ReLU/ReLU6 module output is multiplied by a gate g (forward hooks on a deep copy with
    in-place flags switched off). With g = 1 requiring grad, dS/dg = a * dS/da, so the Taylor
    score is |dS/dg|; pruning sets g to the 0/1 mask. ``forward(m, x, gate)`` replaces
    ``m(x)`` for models with functional activations (``gate`` applies the next gate).
    """
    m = copy.deepcopy(model)
    for mod in m.modules():
        if hasattr(mod, "inplace"):
            mod.inplace = False
    gates: list[torch.Tensor] = []
    state = {"mode": "score", "masks": None}

    def gate(out):
        if state["mode"] == "score":
            g = torch.ones_like(out, requires_grad=True)
            gates.append(g)
            return out * g
        mask = state["masks"][len(gates)]
        gates.append(mask)
        return out * mask

    handles = [
        mod.register_forward_hook(lambda mod, inp, out: gate(out))
        for mod in m.modules()
        if isinstance(mod, (nn.ReLU, nn.ReLU6))
    ]
    run = forward or (lambda mm, x, gate_fn: mm(x))
    out = run(m, x1, gate)
    (s_grads) = torch.autograd.grad(out[0, target], gates)
    scores = [g.abs().detach().numpy() for g in s_grads]
    thr = np.percentile(np.concatenate([s.ravel() for s in scores]), 100 * sparsity)
    state["mode"], state["masks"] = (
        "prune",
        [torch.from_numpy(s > thr).to(x1.dtype) for s in scores],
    )
    gates.clear()
    x = x1.detach().clone().requires_grad_(True)
    out = run(m, x, gate)
    (grad,) = torch.autograd.grad(out[0, target], x)
    for h in handles:
        h.remove()
    kept = sum(float(mk.sum()) for mk in state["masks"]) / sum(s.size for s in scores)
    return grad, kept


def densenet_forward(m, x, gate):
    features = m.features(x)
    out = gate(F.relu(features))  # the functional relu of torchvision's DenseNet.forward
    out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
    return m.classifier(out)


ARCHITECTURES = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None, num_classes=10), None),
    "vgg11": (lambda: torchvision.models.vgg11(weights=None, num_classes=10), None),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None, num_classes=10), None),
    "densenet121": (
        lambda: torchvision.models.densenet121(weights=None, num_classes=10),
        densenet_forward,
    ),
}


def _randomised_eval(builder, seed=0):
    torch.manual_seed(seed)
    model = builder().double().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode BN is not the identity
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return model


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_matches_independent_reference_on_torchvision_architectures(arch):
    builder, forward = ARCHITECTURES[arch]
    model = _randomised_eval(builder)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([3, 7])
    before = _state(model)
    ex = pgl.PruneGrad(model, sparsity=0.8).explain(x, target)
    assert_unchanged(model, before)
    for n in range(2):
        ref, kept = reference_prunegrad(model, x[n : n + 1], int(target[n]), 0.8, forward)
        torch.testing.assert_close(ex.attribution[n : n + 1], ref, atol=1e-9, rtol=1e-7)
        assert ex.kept_fraction[n].item() == pytest.approx(kept, abs=1e-9)
    assert_unchanged(model, before)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "densenet121"])
def test_prunegrad_function_matches_the_reference_and_is_what_the_class_runs(arch, monkeypatch):
    import prunegrad_lite.attribution.prunegrad as module

    builder, forward = ARCHITECTURES[arch]
    model = _randomised_eval(builder)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([1, 8])
    before = _state(model)
    maps = pgl.prunegrad(model, x, target, 0.8)
    assert_unchanged(model, before)
    for n in range(2):
        ref, _ = reference_prunegrad(model, x[n : n + 1], int(target[n]), 0.8, forward)
        torch.testing.assert_close(maps[n : n + 1], ref, atol=1e-9, rtol=1e-7)
    calls = []
    monkeypatch.setattr(module, "prunegrad", lambda *a: calls.append(a) or pgl.prunegrad(*a))
    assert torch.equal(pgl.PruneGrad(model, sparsity=0.8).attribute(x, target), maps)  # bitwise
    assert len(calls) == 1  # the class ran the function
    pgl.PruneGrad(model, sparsity=0.8, scoring="random").attribute(x, target)
    assert len(calls) == 1  # a variant takes its own path
    assert_unchanged(model, before)


def test_the_readme_says_how_long_the_method_is():
    """README and docs/method.md state prunegrad()'s length: kept true by this test."""
    import inspect
    import re
    from pathlib import Path

    from prunegrad_lite.attribution.prunegrad import prunegrad as fn

    lines, _ = inspect.getsourcelines(inspect.unwrap(fn))
    body = [ln for ln in lines if not ln.lstrip().startswith("@")]  # from ``def`` on
    doc = inspect.getdoc(inspect.unwrap(fn)).splitlines()
    stated = f"{len(body)} lines ({len(doc) + 1} of them its docstring)"  # + the closing quotes
    root = Path(__file__).resolve().parents[1]
    for name in ("README.md", "docs/method.md"):
        text = re.sub(r"\s+", " ", (root / name).read_text())
        assert stated in text, f"{name} should say the method is {stated}"


def test_prunegrad_function_checks_like_the_class():
    model = TwoLayer().eval()
    model.default_sparsity = 0.5
    x = torch.tensor([[1.0, 2.0]])
    assert torch.equal(pgl.prunegrad(model, x), pgl.PruneGrad(model).attribute(x))
    with pytest.raises(ValueError, match="out of range"):
        pgl.prunegrad(model, x, target=5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        pgl.prunegrad(model, x, sparsity=1.0)


# ------------------------------------------------------------------------ hand-computed network


def test_hand_computed_two_layer_network():
    # x = (1, 2): a = relu(W1 x) = (1, 2, 3, 0); S_0 = 4*1 - 1*2 + 1*3 + 5*0 = 5 (class 0 wins).
    # dS/da = (4, -1, 1, 5) -> scores |a dS/da| = (4, 2, 3, 0), sorted (0, 2, 3, 4).
    model = TwoLayer().double().eval()
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    s = neuron_scores(model, x)
    assert s.target.tolist() == [0]
    torch.testing.assert_close(
        s.scores[0], torch.tensor([[4.0, 2.0, 3.0, 0.0]], dtype=torch.float64)
    )
    # unpruned gradient: 4*(1,0) - 1*(0,1) + 1*(1,1) = (5, 0)
    torch.testing.assert_close(
        pgl.PruneGrad(model, sparsity=0.0).attribute(x),
        torch.tensor([[5.0, 0.0]], dtype=torch.float64),
    )
    cases = {
        # sparsity: (threshold = numpy percentile, kept neurons, gradient, pruned S_0)
        0.25: (1.5, [1, 1, 1, 0], [5.0, 0.0], 5.0),  # pos 0.75 -> 0 + 0.75*2; only the dead one
        0.5: (2.5, [1, 0, 1, 0], [5.0, 1.0], 7.0),  # pos 1.5 -> 2 + 0.5*1; 4*(1,0) + 1*(1,1)
        0.7: (3.1, [1, 0, 0, 0], [4.0, 0.0], 4.0),  # pos 2.1 -> 3 + 0.1*1; 4*(1,0)
    }
    for sparsity, (thr, kept, grad, pruned_s) in cases.items():
        ex = pgl.PruneGrad(model, sparsity=sparsity).explain(x, return_masks=True)
        assert ex.thresholds.item() == pytest.approx(thr)
        assert ex.masks[0].int().tolist() == [kept]
        torch.testing.assert_close(ex.attribution, torch.tensor([grad], dtype=torch.float64))
        assert ex.pruned_logits[0, 0].item() == pytest.approx(pruned_s)
        assert ex.kept_fraction.item() == pytest.approx(sum(kept) / 4)


# ------------------------------------------------------------------------------- exactness


def test_keeping_every_neuron_is_the_autograd_gradient_in_float64():
    model = _randomised_eval(ARCHITECTURES["resnet18"][0])
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    target = torch.tensor([0, 4, 9])
    s = neuron_scores(model, x, target)
    keep_all = pgl.PruningMasks.keep_all(s.sites, 3, x.device)
    with apply_masks(model, keep_all):
        g = plain_gradient(model, x, target)
    torch.testing.assert_close(g, plain_gradient(model, x, target), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        pgl.PruneGrad(model, sparsity=0.0).attribute(x, target),
        plain_gradient(model, x, target),
        atol=1e-6,
        rtol=0,
    )


def test_percentile_threshold_equals_numpy_including_ties():
    gen = torch.Generator().manual_seed(0)
    values = torch.rand(5, 1001, generator=gen)
    values[:, :300] = 0.0  # many ties at zero, like dead neurons
    values[2] = torch.randint(0, 5, (1001,), generator=gen).float()  # heavy ties
    for q in (0.0, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999):
        got = pgl.percentile_threshold(values, q).numpy()
        want = np.percentile(values.double().numpy(), 100 * q, axis=1)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("numpy_sort", [True, False])
def test_percentile_threshold_on_large_rows_uses_exact_selection(numpy_sort, monkeypatch):
    """Long rows take the clamped sort where NumPy sorts (PruneGrad's rows on the CPU), else the
    bracketed selection; rows whose floor or bracket misses are selected whole."""
    from prunegrad_lite.attribution import percentile

    monkeypatch.setattr(percentile, "_NUMPY_SORT", numpy_sort)
    gen = torch.Generator().manual_seed(1)
    m = 300_000
    values = torch.rand(3, m, generator=gen) ** 4
    values[:, : m // 3] = 0.0
    values[1, ::7] = 5.0  # ranks >= 0.86 M of row 1 tie at 5.0: its bracket is empty
    parts = list(values.split([1000, 150_000, m - 151_000], dim=1))
    calls, clamped = [], []
    original, original_clamped = percentile._bracketed, percentile._clamped
    monkeypatch.setattr(
        percentile, "_bracketed", lambda *a: calls.append(original(*a)) or calls[-1]
    )
    monkeypatch.setattr(
        percentile, "_clamped", lambda *a: clamped.append(a[0][0].shape[0]) or original_clamped(*a)
    )
    for q in (0.2, 0.5, 0.7, 0.9, 0.99):
        got = pgl.percentile_threshold(parts, q).numpy()
        want = np.percentile(values.double().numpy(), 100 * q, axis=1)
        np.testing.assert_array_equal(got, want)
    values[1, ::7] = 0.0
    got = pgl.percentile_threshold(list(values.split(100_000, dim=1)), 0.9).numpy()
    np.testing.assert_array_equal(got, np.percentile(values.double().numpy(), 90, axis=1))
    if numpy_sort:
        assert calls == [] and clamped.count(3) == 6
        return
    assert clamped == []
    assert any(c is None or not c[2].all() for c in calls)  # a row fell back (ties at 5.0)
    assert any(c is not None and c[2].any() for c in calls)


class TwoBranchSum(nn.Module):
    """Two ReLU outputs added directly: autograd hands both sites one shared gradient tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc((F.relu(self.a(x)) + F.relu(self.b(x))).flatten(1))


def test_taylor_scores_reuse_no_gradient_buffer_two_sites_share():
    model = TwoBranchSum().double().eval()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s = neuron_scores(model, x, target=torch.tensor([0, 2]))
    a1, a2 = F.relu(model.a(x)), F.relu(model.b(x))
    g = model.fc.weight[[0, 2]].detach().view(2, 4, 6, 6)  # dS/d(a1 + a2), the same for both
    torch.testing.assert_close(s.scores[0], (a1 * g).abs().detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(s.scores[1], (a2 * g).abs().detach(), rtol=0, atol=1e-12)


class Branches(nn.Module):
    """Two stems (one ReLU straight on the input), a stack, a shared site, and a dead site.

    ``gates``: multiply each activation by the given tensor, in call order (the test's oracle).
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a1, self.a2 = nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
        self.b1, self.dead = nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(1, 2, 1)
        self.fc = nn.Linear(3 * 5 * 5, 4)

    def forward(self, x, gates=None):
        it = iter(gates or [])

        def act(z):
            out = F.relu(z)
            return out * next(it) if gates is not None else out

        raw = act(x)  # a ReLU straight on the input: its node's input is x's own
        a = act(self.a1(x))  # stem A
        a = act(self.a2(a)) + a  # stacked on stem A, which is used twice
        b = act(self.b1(raw))  # stem B, on top of the raw site
        act(self.dead(x))  # computed, never used: its score is 0
        return self.fc((a * b).flatten(1))


def test_taylor_scores_when_the_backward_pass_stops_at_the_lowest_sites():
    """Step 1's backward stops at the sites with no site below them (here the raw ReLU on the
    input, stem A and the dead site); every site's score equals the float64 gate oracle
    ``|dS/dg|`` at ``g = 1``, which has no such shortcut."""
    from prunegrad_lite.attribution.pruning import _lowest

    model = Branches().double().eval()
    x = torch.randn(3, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([0, 3, 1])
    s = neuron_scores(model, x, target)
    assert len(s.sites) == 5
    gates = [
        torch.ones(3, *site.shape, dtype=torch.float64, requires_grad=True) for site in s.sites
    ]
    out = model(x, gates)
    grads = torch.autograd.grad(out[torch.arange(3), target].sum(), gates, allow_unused=True)
    for i, (got, g) in enumerate(zip(s.scores, grads)):
        want = torch.zeros_like(got) if g is None else g.abs()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12, msg=f"site {i}")
    assert torch.count_nonzero(s.scores[4]) == 0 and torch.count_nonzero(s.scores[3]) > 0
    # which sites are lowest, read off a fresh graph
    outs = []
    with torch.enable_grad(), intercept_activations(model, lambda site, o: outs.append(o) or o):
        model(x.clone().requires_grad_(True))
    assert _lowest([o.grad_fn for o in outs]) == [True, True, False, False, True]


def test_scores_without_site_names_are_the_same_scores():
    """names=False (what prunegrad() uses) only renames the sites: same scores, same shapes."""
    model = SmallResidual().eval()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    for scoring in ("taylor", "random"):
        named, plain = (
            neuron_scores(
                model, x, scoring=scoring, names=names, generator=torch.Generator().manual_seed(0)
            )
            for names in (True, False)
        )
        assert [s.name for s in named.sites] == ["relu", "relu#2", "<model>/relu"]
        assert [s.name for s in plain.sites] == ["site0", "site1", "site2"]
        assert [s.shape for s in plain.sites] == [s.shape for s in named.sites]
        for a, b in zip(named.scores, plain.scores):
            assert torch.equal(a, b)


class SmallResidual(nn.Module):
    """A small CNN with a residual addition, an in-place ReLU and a reused ReLU module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = self.relu(self.conv1(x))
        h = self.relu(self.bn(self.conv2(h)) + h)
        return self.fc(F.relu(h).mean((2, 3)))


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        ("mobilenet_v2", {}),
        ("mobilenet_v2", {"threshold": "layer"}),
        ("small", {"scoring": "integrated_gradients"}),
        ("small", {"inner": "integrated_gradients", "inner_options": {"steps": 8}}),
    ],
)
def test_batch_equals_per_sample_results(arch, kwargs):
    builder = SmallResidual if arch == "small" else ARCHITECTURES[arch][0]
    model = _randomised_eval(builder)
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    pg = pgl.PruneGrad(model, sparsity=0.9, **kwargs)
    batch = pg.attribute(x)
    single = torch.cat([pg.attribute(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-10, rtol=1e-8)


def test_per_layer_threshold_keeps_the_same_fraction_in_every_layer():
    model = _randomised_eval(ARCHITECTURES["resnet18"][0])
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    ex = pgl.PruneGrad(model, sparsity=0.75, threshold="layer", scoring="random").explain(x)
    assert ex.thresholds.shape == (2, len(ex.sites))
    # random scores have no ties, so every layer keeps 25% up to one neuron
    for site, kept in zip(ex.sites, ex.kept_per_site[0]):
        assert abs(kept.item() - 0.25) <= 1.0 / site.numel + 1e-9


# ------------------------------------------------------------------------------- variants


def test_random_control_is_reproducible_from_a_seed_and_keeps_the_fraction():
    model = _randomised_eval(ARCHITECTURES["resnet18"][0])
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    a = pgl.PruneGrad(model, 0.9, scoring="random", seed=5).explain(x, return_masks=True)
    b = pgl.PruneGrad(model, 0.9, scoring="random", seed=5).explain(x, return_masks=True)
    c = pgl.PruneGrad(model, 0.9, scoring="random", seed=6).explain(x, return_masks=True)
    torch.testing.assert_close(a.attribution, b.attribution, atol=0, rtol=0)
    assert all(torch.equal(m1, m2) for m1, m2 in zip(a.masks, b.masks))
    assert not all(torch.equal(m1, m2) for m1, m2 in zip(a.masks, c.masks))
    torch.testing.assert_close(
        a.kept_fraction, torch.full((2,), 0.1, dtype=torch.float64), atol=1e-4, rtol=0
    )
    g1 = torch.Generator().manual_seed(5)
    d = pgl.PruneGrad(model, 0.9, scoring="random", seed=g1).explain(x, return_masks=True)
    assert all(torch.equal(m1, m2) for m1, m2 in zip(a.masks, d.masks))


class TwoHidden(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(5, 6), nn.Linear(6, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def test_pruneint_scores_match_a_direct_alpha_loop():
    torch.manual_seed(3)
    model = TwoHidden().double().eval()
    x = torch.randn(2, 5, dtype=torch.float64)
    s = neuron_scores(model, x, torch.tensor([0, 2]), "integrated_gradients", alphas=11)
    h1 = torch.relu(model.fc1(x))
    h2 = torch.relu(model.fc2(h1))
    expected = []
    for layer, act in ((0, h1), (1, h2)):
        grads = []
        for alpha in np.linspace(0, 1, 11):
            scaled = (alpha * act).detach().requires_grad_(True)
            out = model.fc3(torch.relu(model.fc2(scaled))) if layer == 0 else model.fc3(scaled)
            (g,) = torch.autograd.grad(out[[0, 1], [0, 2]].sum(), scaled)
            grads.append(g)
        expected.append((act * torch.stack(grads).mean(0)).abs())
    for got, want in zip(s.scores, expected):
        torch.testing.assert_close(got, want.detach(), atol=1e-12, rtol=1e-10)


def _explicitly_pruned(model: TwoHidden, m1, m2):
    return lambda x: model.fc3(torch.relu(model.fc2(torch.relu(model.fc1(x)) * m1)) * m2)


def test_inner_methods_run_in_the_pruned_network_with_fixed_masks():
    torch.manual_seed(4)
    model = TwoHidden().double().eval()
    x = torch.randn(3, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2])
    s = neuron_scores(model, x, t)
    pm = masks_from_scores(s, 0.5)
    f = _explicitly_pruned(model, *[m.double() for m in pm.masks])
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xg)[torch.arange(3), t].sum(), xg)
    # IG with fixed masks, written out directly: midpoint alphas, zero baseline
    alphas = (torch.arange(64, dtype=torch.float64) + 0.5) / 64
    ig = torch.zeros_like(x)
    for a in alphas:
        xa = (a * x).requires_grad_(True)
        (ga,) = torch.autograd.grad(f(xa)[torch.arange(3), t].sum(), xa)
        ig += ga / 64
    ig = ig * x
    got = {
        inner: pgl.PruneGrad(model, 0.5, inner=inner, inner_options=opts).attribute(x, t)
        for inner, opts in {
            "gradient": {},
            "grad_x_input": {},
            "integrated_gradients": {"steps": 64, "internal_batch_size": 7},
        }.items()
    }
    torch.testing.assert_close(got["gradient"], g)
    torch.testing.assert_close(got["grad_x_input"], g * x)
    torch.testing.assert_close(got["integrated_gradients"], ig)
    # completeness of IG in the pruned network: sum = S'(x) - S'(0)
    completeness = f(x)[torch.arange(3), t] - f(torch.zeros_like(x))[torch.arange(3), t]
    torch.testing.assert_close(ig.sum(1), completeness.detach(), atol=1e-3, rtol=1e-3)
    sg = pgl.PruneGrad(
        model, 0.5, inner="smoothgrad", inner_options={"noise_level": 0.0}
    ).attribute(x, t)
    torch.testing.assert_close(sg, g)


def test_iterative_perturbation_one_step_is_normalised_prunegrad():
    model = _randomised_eval(ARCHITECTURES["resnet18"][0])
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    pg = pgl.PruneGrad(model, 0.9).attribute(x)
    one = pgl.PruneGrad(
        model,
        0.9,
        inner="perturbation",
        inner_options={"epsilon": 2.0, "steps": 1, "step_size": 2.0},
    ).attribute(x)
    expected = 2.0 * pg / pg.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(one, expected)
    many = pgl.PruneGrad(
        model, 0.9, inner="perturbation", inner_options={"epsilon": 2.0}
    ).attribute(x)
    assert (many.flatten(1).norm(dim=1) <= 2.0 + 1e-9).all()
    # the ascent raises the pruned network's target logit at least as much as the one step
    s = neuron_scores(model, x)
    pm = masks_from_scores(s, 0.9)
    with torch.no_grad(), apply_masks(model, pm):
        idx = torch.arange(2), s.target
        base, s_one, s_many = (model(x + d)[idx] for d in (0 * x, one, many))
    assert (s_one > base).all() and (s_many >= s_one - 1e-9).all()


def test_calibration_finds_the_sparsity_for_the_target_change():
    model = _randomised_eval(ARCHITECTURES["resnet18"][0]).float()
    x = torch.randn(8, 3, 32, 32)
    cal = pgl.calibrate_sparsity(model, x, target_change=0.15, tol=0.002)
    assert 0.0 < cal.sparsity < 1.0
    assert cal.change == pytest.approx(0.15, abs=0.05)
    sp = [s for s, _ in cal.evaluated]
    assert sp == sorted(sp)
    ex = pgl.PruneGrad(model, sparsity=cal.sparsity).explain(x)
    assert ex.prob_change.mean().item() == pytest.approx(cal.change, abs=1e-5)


# ------------------------------------------------------------------------ safety and errors


def test_model_is_untouched_even_when_the_call_raises():
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    before = _state(model)
    with pytest.raises(ValueError, match="out of range"):
        pgl.PruneGrad(model, 0.9).attribute(x, target=10)  # raised after the first forward pass
    assert_unchanged(model, before)
    with torch.no_grad():  # works inside no_grad
        a = pgl.PruneGrad(model, 0.9).attribute(x)
    assert a.shape == x.shape and torch.isfinite(a).all() and a.abs().sum() > 0
    assert_unchanged(model, before)
    small = SmallResidual().eval()
    small_before = _state(small)
    for kwargs in ({"scoring": "integrated_gradients"}, {"inner": "smoothgrad"}):
        pgl.PruneGrad(small, 0.9, **kwargs).explain(x, return_scores=True, return_masks=True)
    assert_unchanged(small, small_before)
    assert_unchanged(model, before)


def test_inputs_are_not_modified():
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    x0 = x.clone()
    pgl.PruneGrad(model, 0.9).attribute(x)
    assert torch.equal(x, x0) and not x.requires_grad and x.grad is None


@pytest.mark.parametrize(
    ("inputs", "kwargs", "error", "match"),
    [
        (torch.randn(3, 32, 32), {}, ValueError, "batch dimension"),
        (torch.randn(2, 1, 32, 32), {}, ValueError, "channels"),
        (torch.full((1, 3, 32, 32), float("nan")), {}, ValueError, "NaN"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.long), {}, TypeError, "floating"),
        (torch.randn(2, 3, 32, 32), {"target": [1, 2, 3]}, ValueError, "3 entries"),
        (torch.randn(2, 3, 32, 32), {"target": -1}, ValueError, "out of range"),
        (torch.randn(2, 3, 32, 32), {"target": 0.5}, TypeError, "int"),
    ],
)
def test_bad_inputs_raise_clear_errors(inputs, kwargs, error, match):
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    with pytest.raises(error, match=match):
        pgl.PruneGrad(model, 0.9).attribute(inputs, **kwargs)


def test_bad_options_and_train_mode_are_refused():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            pgl.PruneGrad(model.eval(), sparsity=bad)
    with pytest.raises(ValueError, match="threshold"):
        pgl.PruneGrad(model, 0.5, threshold="local")
    with pytest.raises(ValueError, match="scoring"):
        pgl.PruneGrad(model, 0.5, scoring="shapley")
    with pytest.raises(ValueError, match="inner"):
        pgl.PruneGrad(model, 0.5, inner="lime")
    model.train()
    with pytest.raises(ValueError, match="model.eval"):
        pgl.PruneGrad(model, 0.5).attribute(torch.randn(2, 3, 32, 32))
    assert model.training
    model.eval()
    model.layer1[0].bn1.train()  # one BatchNorm left in train mode would update its statistics
    running_mean = model.layer1[0].bn1.running_mean.clone()
    with pytest.raises(ValueError, match="layer1.0.bn1"):
        pgl.PruneGrad(model, 0.5).attribute(torch.randn(2, 3, 32, 32))
    assert torch.equal(model.layer1[0].bn1.running_mean, running_mean)


def test_model_without_relu_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Flatten(), nn.LazyLinear(2)).eval()
    model(torch.randn(1, 3, 8, 8))
    with pytest.raises(pgl.NoActivationError, match="no ReLU-family"):
        pgl.PruneGrad(model, 0.5).attribute(torch.randn(1, 3, 8, 8))


def test_default_sparsity_comes_from_the_model_when_it_has_one():
    model = TwoLayer().eval()
    assert pgl.PruneGrad(model).sparsity == pgl.DEFAULT_SPARSITY
    model.default_sparsity = 0.85
    assert pgl.PruneGrad(model).sparsity == 0.85


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    model = _randomised_eval(ARCHITECTURES["resnet18"][0]).float()
    x = torch.randn(4, 3, 32, 32)
    cpu = pgl.PruneGrad(model, 0.9).attribute(x)
    gpu_model = copy.deepcopy(model).cuda()
    gpu = pgl.PruneGrad(gpu_model, 0.9).attribute(x)  # the input follows the model, back on CPU
    assert gpu.device == x.device
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-3)
    ex = pgl.PruneGrad(gpu_model, 0.9, scoring="random").explain(x.cuda())
    assert ex.attribution.is_cuda


def test_shipped_fashion_model_default_sparsity_is_calibrated():
    model = pgl.load_model("fashion_mnist", device="cpu")
    x = pgl.load_dataset("fashion_mnist", split="test").images[:512]
    ex = pgl.PruneGrad(model).explain(x)
    assert ex.sparsity == 0.93
    # calibrate_sparsity on these 512 images gave 0.9307 for a 15% mean relative change
    assert ex.prob_change.mean().item() == pytest.approx(0.15, abs=0.02)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_keep_is_score_above_threshold_exactly_as_in_float64(dtype):
    """The keep mask (NumPy's comparison on the CPU, torch's for bfloat16) equals the float64
    comparison, for scores on, just below and just above a threshold between two values."""
    from prunegrad_lite.attribution.pruning import _keep

    gen = torch.Generator().manual_seed(0)
    scores = (torch.rand(3, 4, 5, 6, generator=gen) * 4).to(dtype)
    flat = scores.flatten(1)
    thr = flat[:, 7].double()  # a score itself: ties are pruned
    thr[1] = (
        flat[1, 3].double() + torch.nextafter(flat[1, 3], torch.tensor(9.0, dtype=dtype)).double()
    ) / 2
    thr[2] = -1.0  # everything kept
    want = scores.double() > thr.view(-1, 1, 1, 1)
    for s, w in ((scores, want), (scores.transpose(1, 3), want.transpose(1, 3))):  # strided too
        got = _keep(s, thr)
        assert got.dtype == torch.bool and torch.equal(got, w)
