"""Notebooks 00-04: the from-scratch PruneGrad of 03, the course functions added for the
exercises and widgets, each exercise's answer function."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from helpers import tiny_cnn

import prunegrad_lite as pgl

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["zero", "one", "two", "three"]


pytestmark = pytest.mark.usefixtures("agg")  # tests/conftest.py: off-screen, figures closed


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


# ----------------------------------------------------------------------- 00-02: answers


def test_answers_of_notebook_00(fashion):
    model, x = fashion
    a = pgl.course.answer_sparsity_zero(model, x)
    assert (a.values == 0).all() and "bit for bit" in str(a)
    a = pgl.course.answer_red_pixels(model, x, epsilon=1e-2)
    assert (a.values > 0).all() and a.values.shape == (6,)
    a = pgl.course.answer_kept_fraction(model, x)
    assert (a.values <= 1 - pgl.PruneGrad(model).sparsity + 1e-4).all()


def test_answers_of_notebook_00_hold_on_a_tiny_cnn(cnn, x):
    assert (pgl.course.answer_sparsity_zero(cnn, x).values == 0).all()
    assert (pgl.course.answer_red_pixels(cnn, x, epsilon=1e-3).values > 0).all()


def test_answers_of_notebook_01(fashion):
    model, x = fashion
    a = pgl.course.answer_opposing_neurons(model, x[:3], neurons=30)
    assert 0 < a.opposing_kept.max() <= 1 and 0 < a.raised <= a.ablated
    text = pgl.course.answer_inactive_neurons(model, x[0])
    assert "exactly 0" in text and "inactive" in text
    a = pgl.course.answer_last_site(model, x[0], neurons=12)
    assert set(a.last.sites) == {6} and a.last.names[0] == "layer3.relu#2"
    assert a.last_error < 1e-3 < a.everywhere_error


def test_taylor_vs_ablation_on_one_site(fashion):
    model, x = fashion
    check = pgl.course.taylor_vs_ablation(model, x[0], neurons=10, site=2)
    assert set(check.sites) == {2} and (check.activation > 0).all()
    with pytest.raises(ValueError, match="site"):
        pgl.course.taylor_vs_ablation(model, x[0], neurons=10, site=7)


def test_answers_of_notebook_02(fashion):
    model, x = fashion
    a = pgl.course.answer_kept_below_zero_fraction(model, x, sparsity=0.3)
    kept, nonzero = a.rows.values()
    np.testing.assert_array_equal(kept, nonzero)
    a = pgl.course.answer_random_control(model, x, sparsity=0.5)
    taylor, random = a.rows.values()
    assert taylor.mean() < random.mean()
    with pytest.raises(AssertionError, match="zero scores"):
        pgl.course.answer_kept_below_zero_fraction(model, x, sparsity=0.9)


# ----------------------------------------------------------------------- 04


def test_pass_counts_count_passes_per_image(cnn, x):
    counts = pgl.course.pass_counts(
        cnn,
        x,
        ["gradient", "integrated_gradients", "prunegrad"],
        {"integrated_gradients": {"steps": 7}},
    )
    assert counts.backward == {"gradient": 1, "integrated_gradients": 7, "prunegrad": 2}
    assert counts.forward == {"gradient": 1, "integrated_gradients": 8, "prunegrad": 2}
    assert len(counts.table().splitlines()) == 4 and not cnn._forward_hooks


def test_answers_of_notebook_04(fashion, cnn, x):
    model, xf = fashion
    assert "prunegrad" in pgl.course.answer_pass_counts(model, xf[:2], steps=3, samples=2)
    assert "bit for bit" in pgl.course.answer_controls_ignore_the_model(cnn, x)
    assert "grad_x_input" in pgl.course.answer_grad_x_input(cnn, x)


def test_map_cosine_and_format_similarity(cnn, x):
    g = pgl.Gradient(cnn).attribute(x)
    np.testing.assert_allclose(pgl.course.map_cosine(g, 3 * g), 1.0)
    np.testing.assert_allclose(pgl.course.map_cosine(g, -g), -1.0)
    assert (pgl.course.map_cosine(g, torch.zeros_like(g)) == 0).all()
    run = pgl.course.method_maps(cnn, x, ["gradient", "grad_x_input", "prunegrad"])
    lines = pgl.course.format_similarity(run).splitlines()
    assert len(lines) == 3 and lines[1].startswith("grad_x_input")
    mean = float(lines[2].split()[1])
    assert mean == pytest.approx(
        pgl.course.map_cosine(run.maps["gradient"], run.maps["prunegrad"]).mean(), abs=0.006
    )
    with pytest.raises(ValueError, match="not among"):
        pgl.course.format_similarity(run, reference="smoothgrad")


def test_method_diagram_has_the_three_steps():
    fig = pgl.course.plot_method_diagram()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert ["1. scores", "2. masks", "3. gradient"] == [t for t in texts if t[:1].isdigit()]
    assert "1911.11081" in fig.axes[0].get_title()


def test_taylor_parts_widget_shows_the_chosen_channel(cnn, x):
    display = (x - x.min()) / (x.max() - x.min())
    w = pgl.course.build_taylor_parts_widget(cnn, x, display, top=3)
    parts, channel = w.result
    assert channel == pgl.course.top_channels(parts.scores[0], k=1)[0][0]
    w.controls["image"].value = 1
    w.controls["layer"].value = 1
    w.controls["rank"].value = 2
    parts, channel = w.result
    expected = pgl.course.taylor_parts(cnn, x[1:2])
    torch.testing.assert_close(parts.scores[1], expected.scores[1])
    assert channel == pgl.course.top_channels(expected.scores[1], k=3)[0][2]
    assert f"channel {channel}" in w.figure._suptitle.get_text()
    assert [ax.get_title() for ax in w.figure.axes[1:4]] == [
        "activation a",
        "gradient dS_c/da",
        "Taylor score |a dS_c/da|",
    ]
