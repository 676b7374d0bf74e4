"""Notebook 01's check: the Taylor estimate against the true effect of removing a neuron."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import prunegrad_lite as pgl


def _two_layer() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(nn.Flatten(), nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 3)).double().eval()
    )


def test_exact_when_the_logit_is_linear_in_the_neurons():
    # S = w2 . relu(W1 x) + b: removing neuron i changes S by exactly w2_i a_i = a_i dS/da_i
    model = _two_layer()
    x = torch.randn(1, 1, 3, 4, dtype=torch.float64)
    check = pgl.course.taylor_vs_ablation(model, x, target=1, neurons=10, seed=0)
    assert check.target == 1 and len(check.taylor) == 10
    np.testing.assert_allclose(check.true_change, check.taylor, atol=1e-12)
    assert check.spearman == pytest.approx(1.0)
    assert (check.activation > 0).all()  # only active neurons are ablated
    w2 = model[3].weight[1].detach().numpy()
    a = torch.relu(model[1](x.flatten(1)))[0].detach().numpy()
    idx = [int(np.flatnonzero(np.isclose(a, v))[0]) for v in check.activation]
    np.testing.assert_allclose(check.taylor, a[idx] * w2[idx], atol=1e-12)


def test_true_change_matches_one_forward_hook_ablation_per_neuron():
    model = pgl.load_model("fashion_mnist")
    x = pgl.load_dataset("fashion_mnist", "test").images[:1]
    check = pgl.course.taylor_vs_ablation(model, x, neurons=6, seed=3)
    assert model.training is False and not model._forward_hooks
    # oracle: the same neuron zeroed by a forward hook on the same ReLU call, one run per neuron
    sites = pgl.count_activation_sites(model, x)
    for k in range(len(check.taylor)):
        site_index, pos = check.sites[k], check.positions[k]
        target_site = sites[site_index]

        def zero_one(site, out, _want=site_index, _pos=pos, _a=check.activation[k]):
            if site.index != _want:
                return out
            flat = out.clone().flatten(1)
            assert flat[0, _pos].item() == pytest.approx(_a, rel=1e-6)
            flat[0, _pos] = 0.0
            return flat.view_as(out)

        with torch.no_grad(), pgl.intercept_activations(model, zero_one):
            logit = model(x)[0, check.target].item()
        assert target_site.name == check.names[k]
        assert check.logit - logit == pytest.approx(check.true_change[k], rel=1e-4, abs=2e-5)


def test_bad_input():
    model = _two_layer()
    with pytest.raises(ValueError, match="one image"):
        pgl.course.taylor_vs_ablation(model, torch.randn(2, 1, 3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2"):
        pgl.course.taylor_vs_ablation(
            model, torch.randn(1, 1, 3, 4, dtype=torch.float64), neurons=1
        )


def test_figure():
    model = _two_layer()
    check = pgl.course.taylor_vs_ablation(
        model, torch.randn(1, 1, 3, 4, dtype=torch.float64), neurons=8
    )
    fig = pgl.course.plot_ablation_check(check)
    assert "Spearman" in fig.axes[1].get_title()
