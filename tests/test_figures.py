"""The figures build (Agg backend), with the right panels, titles and colour bars, and are closed."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from prunegrad_lite.figures import (
    MAGNITUDE_CMAP,
    SIGNED_CMAP,
    plot_heatmap,
    plot_method_grid,
    plot_overlay,
    plot_sparsity_sweep,
)


@pytest.fixture(autouse=True)
def agg():
    """Draw off-screen and close every figure a test made."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    yield plt
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


def _colorbars(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _images(ax) -> list:
    return ax.get_images()


@pytest.fixture
def maps() -> torch.Tensor:
    return torch.randn(2, 3, 6, 7, generator=torch.Generator().manual_seed(0))  # (N, C, H, W)


def test_heatmap_signed_and_magnitude(agg, maps):
    fig = plot_heatmap(maps[0])
    assert len(fig.axes) == 2 and len(_colorbars(fig)) == 1
    ax = fig.axes[0]
    (im,) = _images(ax)
    assert im.get_cmap().name == SIGNED_CMAP and im.get_clim() == (-1.0, 1.0)  # centred at 0
    assert "signed" in ax.get_title() and ax.get_xlabel() == "x (pixels)"
    assert im.get_array().shape == (6, 7)
    fig2 = plot_heatmap(maps[0], signed=False)
    (im2,) = _images(fig2.axes[0])
    assert im2.get_cmap().name == MAGNITUDE_CMAP and im2.get_clim() == (0.0, 1.0)
    assert np.asarray(im2.get_array()).min() >= 0
    agg.close(fig)
    agg.close(fig2)
    assert not agg.fignum_exists(fig.number)


def test_heatmap_on_given_axes(agg, maps):
    fig, axes = agg.subplots(1, 2)
    assert plot_heatmap(maps[1, 0].numpy(), ax=axes[1], title="gradient") is fig
    assert axes[1].get_title() == "gradient" and len(_colorbars(fig)) == 1
    assert not _images(axes[0])


def test_overlay(agg, maps):
    image = np.random.default_rng(0).random((6, 7, 3))
    fig = plot_overlay(image, maps[0], alpha=0.4)
    ax = fig.axes[0]
    photo, heat = _images(ax)
    assert heat.get_alpha() == 0.4 and heat.get_cmap().name == MAGNITUDE_CMAP
    assert ax.get_title() and len(_colorbars(fig)) == 1
    fig_gray = plot_overlay(torch.rand(1, 6, 7), maps[0])  # a (C, H, W) tensor, one channel
    assert _images(fig_gray.axes[0])[0].get_array().ndim == 2
    with pytest.raises(ValueError, match="pixels"):
        plot_overlay(image[:5], maps[0])


def test_method_grid(agg, maps):
    images = np.random.default_rng(0).random((2, 6, 7, 3))
    grid = {"gradient": maps, "gradcam": maps.abs(), "prunegrad": -maps}
    fig = plot_method_grid(images, grid, class_names=["shirt", "boot"])
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 * 4 and len(_colorbars(fig)) == 3  # one colour bar per method
    titles = [ax.get_title() for ax in panels[:4]]
    assert titles == ["input", "gradient", "gradcam", "prunegrad"]
    assert panels[4].get_ylabel() == "boot"
    assert _images(panels[1])[0].get_cmap().name == SIGNED_CMAP
    assert _images(panels[2])[0].get_cmap().name == MAGNITUDE_CMAP  # non-negative map
    assert "method" in fig._suptitle.get_text()
    renamed = plot_method_grid(torch.rand(2, 3, 6, 7), grid, titles=["Grad", "CAM", "PG"])
    assert [ax.get_title() for ax in renamed.axes[1:4]] == ["Grad", "CAM", "PG"]
    with pytest.raises(ValueError, match="maps for 2 images"):
        plot_method_grid(images, {"gradient": maps[:1]})


def test_method_grid_fits_a_notebook_and_wraps_many_methods(agg, maps):
    """Six columns fit a notebook's output unshrunk; max_columns wraps ten methods into bands."""
    from prunegrad_lite.figures import GRID_WIDTH

    images = torch.rand(2, 3, 6, 7)
    five = {f"m{i}": maps for i in range(5)}
    assert plot_method_grid(images, five).get_figwidth() <= GRID_WIDTH + 1e-9
    ten = {f"m{i}": maps for i in range(10)}
    fig = plot_method_grid(images, ten, max_columns=4)  # bands of 4, 4 and 2 methods
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3 * 2 * 5 and len(_colorbars(fig)) == 10
    titles = [ax.get_title() for ax in panels]
    assert titles[:5] == ["input", "m0", "m1", "m2", "m3"]
    assert titles[10:15] == ["input", "m4", "m5", "m6", "m7"]
    assert titles[20:23] == ["input", "m8", "m9"]
    assert not panels[23].axison and not panels[29].axison  # the last band's empty cells


def test_sparsity_sweep(agg, maps):
    sweep = {0.9: maps[0], 0.0: maps[1], 0.5: maps[0].abs()}
    fig = plot_sparsity_sweep(torch.rand(3, 6, 7), sweep)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 4 and len(_colorbars(fig)) == 1
    assert [ax.get_title() for ax in panels] == [
        "input",
        "sparsity 0\n(plain gradient)",
        "sparsity 0.50",
        "sparsity 0.90",
    ]
    assert "sparsity" in fig._suptitle.get_text()
    assert _images(panels[2])[0].get_cmap().name == SIGNED_CMAP  # one scale for the sweep
