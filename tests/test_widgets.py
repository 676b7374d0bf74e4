"""Each widget builds, and setting a control's value changes what it shows accordingly."""

from __future__ import annotations

import ipywidgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from helpers import tiny_cnn
from matplotlib.figure import Figure

import prunegrad_lite as pgl

CLASSES = ["zero", "one", "two", "three"]


@pytest.fixture(autouse=True)
def agg():
    """Draw off-screen, and check that no widget leaves a figure open."""
    matplotlib.use("Agg")
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before, "a widget left a figure open"


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_cnn("inplace", bn=True, seed=2)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # (N, C, H, W)


@pytest.fixture(scope="module")
def display(images) -> torch.Tensor:
    return (images - images.min()) / (images.max() - images.min())  # [0, 1]


def _shown(widget: pgl.course.LessonWidget) -> Figure:
    """The figure the widget shows, after checking it is the PNG in its image."""
    assert isinstance(widget, ipywidgets.VBox)
    assert isinstance(widget.figure, Figure)
    assert widget.image in widget.children
    assert bytes(widget.image.value[:4]) == b"\x89PNG" and widget.image.layout.display is None
    return widget.figure


def test_first_map_widget_follows_the_image(model, images, display):
    w = pgl.course.build_first_map_widget(model, images, display, CLASSES)
    torch.testing.assert_close(w.result.maps["gradient"], pgl.Gradient(model).attribute(images[:1]))
    first, first_png = w.result, w.image.value
    w.controls["image"].value = 2
    assert w.result is not first and w.image.value != first_png
    torch.testing.assert_close(
        w.result.maps["prunegrad"], pgl.PruneGrad(model).attribute(images[2:3])
    )
    label = pgl.course.prediction_labels(model, images[2:3], CLASSES)[0]
    assert _shown(w).axes[0].get_ylabel() == label
    w.controls["image"].value = 0
    assert w.result is first  # cached: moving back recomputes nothing


def test_neuron_importance_widget_follows_image_and_layer(model, images, display):
    w = pgl.course.build_neuron_importance_widget(model, images, display, top=3)
    assert [v for _, v in w.controls["layer"].options] == [0, 1]
    w.controls["layer"].value = 1
    w.controls["image"].value = 3
    channels, maps = w.result
    expected = pgl.course.top_channels(pgl.course.taylor_parts(model, images[3:4]).scores[1], k=3)
    assert channels == expected[0]
    torch.testing.assert_close(maps, expected[1])
    assert "channel" in _shown(w).axes[1].get_title()


def test_pruning_widget_shows_kept_fraction_and_probability_for_the_slider(model, images):
    w = pgl.course.build_pruning_widget(model, images, sparsity=0.9)
    taylor, random = w.result
    assert taylor.sparsities.tolist() == [0.9] and random.scoring == "random"
    w.controls["sparsity"].value = 0.3
    taylor, random = w.result
    total = sum(s.numel for s in taylor.sites)
    np.testing.assert_allclose(random.kept_fraction, 0.7, atol=1.5 / total)
    assert (taylor.kept_fraction <= 0.7 + 1e-9).all()
    ex = pgl.PruneGrad(model, sparsity=0.3).explain(images)
    np.testing.assert_allclose(taylor.pruned_prob[0], ex.pruned_prob.numpy(), rtol=1e-5)
    assert "sparsity 0.30" in _shown(w).axes[0].get_title()


def test_prunegrad_widget_shows_the_gradient_and_prunegrad_at_the_slider(model, images, display):
    w = pgl.course.build_prunegrad_widget(model, images, display, sparsity=0.9)
    assert sorted(w.result.maps) == [0.0, 0.9]
    w.controls["sparsity"].value = 0.5
    w.controls["image"].value = 1
    torch.testing.assert_close(w.result.maps[0.0], pgl.Gradient(model).attribute(images[1:2]))
    torch.testing.assert_close(
        w.result.maps[0.5], pgl.PruneGrad(model, sparsity=0.5).attribute(images[1:2])
    )
    assert "sparsity 0.50" in _shown(w)._suptitle.get_text()
    w.controls["sparsity"].value = 0.0  # the plain gradient alone
    assert list(w.result.maps) == [0.0]


def test_method_widget_shows_the_selected_methods(model, images, display):
    methods = ["gradient", "gradcam", "prunegrad", "integrated_gradients"]
    names = ["a", "b", "c", "d"]
    w = pgl.course.build_method_widget(
        model,
        images,
        display,
        CLASSES,
        methods,
        options={"integrated_gradients": {"steps": 4}},
        image_names=names,
    )
    assert list(w.result.maps) == methods[:3]
    w.controls["methods"].value = ("integrated_gradients", "gradient")
    w.controls["image"].value = 2
    assert list(w.result.maps) == ["integrated_gradients", "gradient"]
    torch.testing.assert_close(
        w.result.maps["integrated_gradients"],
        pgl.IntegratedGradients(model, steps=4).attribute(images[2:3]),
    )
    assert len(_shown(w).axes) == 1 + 2 + 2  # input, two maps, two colour bars
    w.controls["methods"].value = ()
    assert w.result is None and w.figure is None
    assert w.message.value == "Select at least one method." and w.image.layout.display == "none"
    w.controls["methods"].value = ("gradient",)
    assert w.message.value == "" and _shown(w).axes[0].get_title() == "input"


def test_method_widget_reuses_precomputed_maps(model, images, display):
    run = pgl.course.method_maps(model, images, ["gradient", "edge"])
    w = pgl.course.build_method_widget(
        model, images, display, CLASSES, ["gradient", "edge", "gradcam"], precomputed=run
    )
    w.controls["image"].value = 3
    assert w.result.maps["edge"] is not None
    torch.testing.assert_close(w.result.maps["edge"], run.maps["edge"][3:4], rtol=0, atol=0)
    assert w.result.seconds["gradient"] == pytest.approx(run.seconds["gradient"] / 4)
    w.controls["methods"].value = ("gradcam",)  # not precomputed: computed now
    torch.testing.assert_close(w.result.maps["gradcam"], pgl.GradCAM(model).attribute(images[3:4]))
    with pytest.raises(ValueError, match="precomputed"):
        pgl.course.build_method_widget(
            model, images[:2], display[:2], CLASSES, ["edge"], precomputed=run
        )


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)  # a normalisation, [0, 1] pixel units


def test_sanity_widget_steps_through_the_cascade(model, images):
    methods = ["gradient", "guided_backprop", "edge"]
    w = pgl.course.build_sanity_widget(model, images[:2], MEAN, STD, methods, seed=1)
    cascade = pgl.course.cascading_maps(model, images[:2], methods, seed=1)
    assert len(w.controls["stage"].options) == len(cascade.stages)
    torch.testing.assert_close(w.result["gradient"], pgl.Gradient(model).attribute(images[:2]))
    png = w.image.value
    w.controls["stage"].value = 2
    for name in methods:
        torch.testing.assert_close(w.result[name], cascade.maps[2][name])
    assert w.image.value != png
    assert cascade.stages[2] in _shown(w)._suptitle.get_text()


def test_pixel_perturbation_widget_follows_fraction_and_order(model, images):
    methods = ["gradient", "prunegrad"]
    w = pgl.course.build_pixel_perturbation_widget(model, images, MEAN, STD, methods)
    assert w.result.fraction == pytest.approx(0.1) and w.result.order == "lerf"
    w.controls["fraction"].value = 0.3
    w.controls["order"].value = "morf"
    maps = pgl.course.method_maps(model, images, methods).maps
    expected = pgl.course.perturbed_images(model, images, maps, 0.3, "morf")
    for name in methods:
        torch.testing.assert_close(w.result.images[name], expected.images[name])
        np.testing.assert_allclose(w.result.change[name], expected.change[name])
    assert "MORF" in _shown(w)._suptitle.get_text()


def test_roar_widget_removes_more_pixels_as_the_fraction_grows(model, images):
    fill = images.mean(dim=(0, 2, 3))
    w = pgl.course.build_roar_widget(model, images, fill, MEAN, STD, ["gradient", "random"])
    assert w.result.fraction == 0.5

    def removed(result):
        return (result.images["gradient"] != images).any(1).flatten(1).sum(1)  # (N,)

    half = removed(w.result)
    w.controls["fraction"].value = 0.9
    assert (removed(w.result) > half).all() and w.result.fraction == 0.9
    assert "90%" in _shown(w)._suptitle.get_text()


def test_scores_widget_shows_the_chosen_score(model, images):
    result = pgl.pixel_perturbation(
        model, images, ["gradient", "random"], pgl.PixelPerturbationConfig(fractions=(0.1, 0.2)),
        progress=False,
    )  # fmt: skip
    w = pgl.course.build_scores_widget({"pixel": result})
    assert [v for _, v in w.controls["score"].options] == [
        ("pixel", name) for name in result.score_names()
    ]
    w.controls["score"].value = ("pixel", "morf_auc")
    assert [s.name for s in w.result] == ["morf_auc", "morf_auc"]
    assert "morf_auc" in _shown(w).axes[0].get_title()


def test_builders_check_their_arguments(model, images, display):
    with pytest.raises(ValueError, match="display images"):
        pgl.course.build_first_map_widget(model, images, display[:2], CLASSES)
    with pytest.raises(ValueError, match="image names"):
        pgl.course.build_prunegrad_widget(model, images, display, image_names=["only one"])


def test_a_widget_figure_fits_a_notebook_and_is_never_stretched() -> None:
    """A figure wider than MAX_FIGURE_PX is drawn narrower (its fonts kept), and the image is
    shown at its own size: a box's children stretch across it by default."""
    import io

    from PIL import Image

    from prunegrad_lite.course.shared import MAX_FIGURE_PX

    def draw(result, width):
        fig, ax = plt.subplots(figsize=(width, 2.0), dpi=100)
        ax.set_title("a title")
        return fig

    w = pgl.course.LessonWidget("t", {"width": ipywidgets.Dropdown(options=[18.0, 4.0])},
                                lambda width: width, draw)  # fmt: skip
    assert Image.open(io.BytesIO(w.image.value)).width <= MAX_FIGURE_PX + 20
    assert w.figure.get_figwidth() * w.figure.dpi <= MAX_FIGURE_PX + 1e-6
    w.controls["width"].value = 4.0  # narrower than the cap: drawn as it is
    assert w.figure.get_figwidth() == pytest.approx(4.0)
    assert w.image.layout.align_self == "flex-start" and w.image.layout.margin == "2px 0px"
