"""Notebooks 00-04: the from-scratch PruneGrad of 03, the course functions added for the
exercises and widgets, each exercise's answer function."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
import torch
from helpers import tiny_cnn

import prunegrad_lite as pgl

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["zero", "one", "two", "three"]


@pytest.fixture(autouse=True)
def agg():
    """Draw off-screen and close every figure a test made."""
    matplotlib.use("Agg")
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


@pytest.fixture(scope="module")
def fashion():
    model = pgl.load_model("fashion_mnist")
    x = pgl.load_dataset("fashion_mnist", "test").images[:6]
    return model, x


@pytest.fixture
def cnn() -> torch.nn.Module:
    return tiny_cnn("reused", bn=True, seed=0)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def _from_scratch():
    """The function the cell tagged from-scratch of notebook 03 defines, run from its source."""
    nb = nbformat.read(ROOT / "notebooks" / "03_prunegrad.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "from-scratch" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    exec(compile(cell.source, "03_prunegrad.ipynb[from-scratch]", "exec"), namespace)
    return namespace["prunegrad_from_scratch"]


# ----------------------------------------------------------------------- 03: from scratch


def test_relu_calls_as_modules_computes_the_same_and_leaves_the_model(fashion):
    model, x = fashion
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hookable = pgl.course.relu_calls_as_modules(model)
    assert torch.equal(hookable(x), model(x))
    relus = [m for m in hookable.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 4  # the stem's F.relu became a module; each block's one module
    assert not any(isinstance(m, torch.fx.GraphModule) for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    functional = tiny_cnn("functional", seed=1)
    copy = pgl.course.relu_calls_as_modules(functional)
    assert sum(isinstance(m, torch.nn.ReLU) for m in copy.modules()) == 2
    assert torch.equal(copy(torch.ones(2, 3, 8, 8)), functional(torch.ones(2, 3, 8, 8)))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.93, 0.99])
def test_the_from_scratch_cell_equals_the_package_on_the_shipped_model(fashion, sparsity):
    """Ties included: at 0.3 the threshold is 0 and half the neurons tie with it."""
    model, x = fashion
    prunegrad_from_scratch = _from_scratch()
    hookable = pgl.course.relu_calls_as_modules(model)
    ours = prunegrad_from_scratch(hookable, x, sparsity)
    torch.testing.assert_close(ours, pgl.PruneGrad(model, sparsity=sparsity).attribute(x))
    torch.testing.assert_close(
        prunegrad_from_scratch(hookable, x, sparsity, target=2),
        pgl.PruneGrad(model, sparsity=sparsity).attribute(x, target=2),
    )


def test_the_from_scratch_cell_equals_the_package_on_module_relus(cnn, x):
    prunegrad_from_scratch = _from_scratch()
    for s in (0.4, 0.8):
        torch.testing.assert_close(
            prunegrad_from_scratch(cnn, x, s), pgl.PruneGrad(cnn, sparsity=s).attribute(x)
        )
    assert not cnn._forward_hooks and not cnn.relu1._forward_hooks  # hooks removed


# ----------------------------------------------------------------------- 03: the circular test


def test_perturbation_gains_in_the_unpruned_network(cnn, x):
    eps = 1e-3
    g = pgl.course.perturbation_gains(cnn, x, 0.7, [eps, 0.5], steps=2)
    assert set(g.unpruned) == set(g.gains) and g.unpruned["gradient"].shape == (2, 5)
    grad = pgl.Gradient(cnn).attribute(x)
    expected = eps * grad.flatten(1).norm(dim=1).double().numpy()
    np.testing.assert_allclose(g.unpruned["gradient"][0], expected, rtol=2e-2)
    assert g.winners("pruned")[0] in ("prunegrad", "iterative")
    assert g.winners("unpruned")[0] == "gradient"
    table = g.table().splitlines()
    assert len(table) == 1 + 2 * 2 and table[1].startswith("pruned") and "unpruned" in table[3]
    with pytest.raises(ValueError, match="network"):
        g.of("other")
    fig = pgl.course.plot_perturbation_gains(g)
    assert len(fig.axes) == 2 and "construction" in fig.axes[0].get_title()
    assert "unpruned" in fig.axes[1].get_title()


def test_answer_circular_test(fashion):
    model, x = fashion
    g = pgl.course.answer_circular_test(model, x, 0.9)
    assert g.winners("unpruned") == ["gradient"]
    assert g.gains["prunegrad"].mean() > g.gains["gradient"].mean()


# ----------------------------------------------------------------------- 03: other answers


def test_answer_dead_fraction(fashion):
    model, x = fashion
    a = pgl.course.answer_dead_fraction(model, x)
    assert a.sparsity < a.zero_fraction.min() < a.zero_fraction.max() < a.above_sparsity
    assert a.max_difference == 0.0 and a.above_difference > 0
    assert "zero-score fraction" in str(a)


def test_answer_second_class(fashion):
    model, x = fashion
    a = pgl.course.answer_second_class(model, x, 0.9)
    assert a.classes.shape == (6, 2) and (a.classes[:, 0] != a.classes[:, 1]).all()
    assert ((a.kept_overlap > 0) & (a.kept_overlap < 1)).all()
    assert a.cosine_prunegrad.shape == (6,) and "Jaccard" in str(a)


# ----------------------------------------------------------------------- 03: the class widget


def test_target_class_widget_explains_the_chosen_class(cnn, x):
    display = (x - x.min()) / (x.max() - x.min())
    w = pgl.course.build_target_class_widget(cnn, x, display, CLASSES, sparsity=0.8)
    assert w.controls["target"].value == int(cnn(x[:1]).argmax())
    w.controls["image"].value = 2
    w.controls["target"].value = 1
    torch.testing.assert_close(w.result.maps[0.0], pgl.Gradient(cnn).attribute(x[2:3], 1))
    torch.testing.assert_close(
        w.result.maps[0.8], pgl.PruneGrad(cnn, sparsity=0.8).attribute(x[2:3], 1)
    )
    assert "explained class: one" in w.figure._suptitle.get_text()
    with pytest.raises(ValueError):
        pgl.course.build_target_class_widget(cnn, x, display[:2], CLASSES)
