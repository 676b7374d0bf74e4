"""The package's figures: the CLI and the notebooks draw the same ones from here.

Every function returns the :class:`matplotlib.figure.Figure` it drew on (a new one when no
``ax`` is given), with a title that says what is shown, and a colour bar. Nothing changes
matplotlib's global state (no rcParams, no backend choice); close figures with
``plt.close(fig)`` when making many.

Colours: a **signed** map is drawn with a diverging colormap (:data:`SIGNED_CMAP`) centred at
0, scaled to [-1, 1] by its max |value|; a **non-negative** map (magnitudes, Grad-CAM,
FullGrad) with a sequential colormap (:data:`MAGNITUDE_CMAP`) on [0, 1].

Images are accepted as numpy arrays **channels-last** in [0, 1] ((H, W, C) or (H, W), what
:func:`~prunegrad_lite.maps.to_display_image` returns) or as tensors **channels-first** in
[0, 1] ((C, H, W)); batches add a leading N.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from prunegrad_lite.maps import normalize_map, reduce_channels

__all__ = [
    "MAGNITUDE_CMAP",
    "SIGNED_CMAP",
    "plot_heatmap",
    "plot_method_grid",
    "plot_overlay",
    "plot_sparsity_sweep",
]

#: The width, in inches, that :func:`plot_method_grid` keeps to when it can: about 880 px at
#: 100 dpi, what a notebook's output area shows unshrunk in a 1366 px wide JupyterLab.
GRID_WIDTH = 8.8
SIGNED_CMAP = "RdBu_r"  # diverging: blue negative, white 0, red positive
MAGNITUDE_CMAP = "inferno"  # sequential: black 0 to yellow 1

_SCALE_LABEL = {True: "attribution / max |attribution|", False: "|attribution| / max |attribution|"}


def _pixel_map(m: Tensor | np.ndarray, signed: bool) -> np.ndarray:
    """One map as (H, W) numpy in [-1, 1] (signed) or [0, 1], from (H, W), (C, H, W) or (1, C, H, W)."""
    t = m if isinstance(m, Tensor) else torch.as_tensor(np.asarray(m))
    t = t.detach().to("cpu", torch.float64)
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None, None]  # (1, 1, H, W)
    elif t.ndim == 3:
        t = t[None]  # (1, C, H, W)
    else:
        raise ValueError(f"a map must be (H, W), (C, H, W) or (1, C, H, W), got {tuple(t.shape)}")
    pixels = reduce_channels(t, "signed_max_abs" if signed else "max_abs")  # (1, H, W)
    return normalize_map(pixels)[0].numpy()


def _is_signed(m: Tensor | np.ndarray) -> bool:
    return bool(
        (np.asarray(m.detach().cpu()) if isinstance(m, Tensor) else np.asarray(m)).min() < 0
    )


def _image(image: Tensor | np.ndarray) -> np.ndarray:
    """One display image as numpy (H, W, 3) or (H, W) in [0, 1]."""
    if isinstance(image, Tensor):
        img = image.detach().cpu().numpy()
        if img.ndim == 3:
            img = np.moveaxis(img, 0, -1)  # (C, H, W) -> (H, W, C)
    else:
        img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"an image must be (H, W, C) numpy or (C, H, W) tensor, got {img.shape}")
    return np.clip(img.astype(np.float64), 0.0, 1.0)


def _show_image(ax: Axes, image: np.ndarray) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)


def _show_map(ax: Axes, pixels: np.ndarray, signed: bool, alpha: float = 1.0):
    cmap = SIGNED_CMAP if signed else MAGNITUDE_CMAP
    return ax.imshow(pixels, cmap=cmap, vmin=-1.0 if signed else 0.0, vmax=1.0, alpha=alpha)


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _axes(ax: Axes | None, figsize: tuple[float, float] = (4.5, 3.8)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, new_ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, new_ax


def _labelled(fig: Figure, ax: Axes, im: Any, title: str, signed: bool = False) -> Figure:
    """Finish a one-map figure: its title, pixel axes and a colour bar of the map's scale."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    fig.colorbar(im, ax=ax, label=_SCALE_LABEL[signed])
    return fig


def plot_heatmap(
    map: Tensor | np.ndarray, ax: Axes | None = None, signed: bool = True, title: str | None = None
) -> Figure:
    """Draw one attribution map with a colour bar.

    Parameters
    ----------
    map : (H, W), (C, H, W) or (1, C, H, W); channels are reduced with ``"signed_max_abs"``
        (``signed=True``) or ``"max_abs"`` (``signed=False``), then scaled by max |value|.
    ax : axes to draw on; default None, a new figure.
    signed : True (default): diverging colormap centred at 0 on [-1, 1]; False: magnitudes,
        sequential colormap on [0, 1].
    title : default says which reduction and scaling are shown.

    Example
    -------
    >>> fig = plot_heatmap(maps[0])                # maps from any method, (N, C, H, W)
    >>> fig = plot_heatmap(maps[0], signed=False)
    >>> fig.savefig("map.png")
    """
    fig, ax = _axes(ax)
    pixels = _pixel_map(map, signed)
    im = _show_map(ax, pixels, signed)
    what = (
        "signed attribution (channel of largest |value|)"
        if signed
        else "max over channels of |attribution|"
    )
    return _labelled(fig, ax, im, title or f"{what},\nscaled by its max |value|", signed)


def plot_overlay(
    image: Tensor | np.ndarray,
    map: Tensor | np.ndarray,
    ax: Axes | None = None,
    alpha: float = 0.5,
    title: str | None = None,
) -> Figure:
    """Draw the attribution magnitude over the image it explains.

    Parameters
    ----------
    image : display image in [0, 1]: numpy (H, W, C) / (H, W) or tensor (C, H, W).
    map : (H, W), (C, H, W) or (1, C, H, W): drawn as ``max_c |A_c|`` scaled to [0, 1],
        sequential colormap.
    ax : axes to draw on; default None, a new figure.
    alpha : opacity of the map over the image; default 0.5.

    Example
    -------
    >>> img = to_display_image(x, mean, std)          # (N, H, W, C)
    >>> fig = plot_overlay(img[0], maps[0], alpha=0.5)
    >>> fig.axes[0].get_title()
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    fig, ax = _axes(ax)
    img = _image(image)
    pixels = _pixel_map(map, signed=False)
    if img.shape[:2] != pixels.shape:
        raise ValueError(f"image is {img.shape[:2]} pixels but the map is {pixels.shape}")
    _show_image(ax, img)
    im = _show_map(ax, pixels, signed=False, alpha=alpha)
    return _labelled(fig, ax, im, title or "|attribution| (max over channels) over the image")


def plot_method_grid(
    images: Tensor | np.ndarray,
    maps: Mapping[str, Tensor],
    titles: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    max_columns: int | None = None,
) -> Figure:
    """A grid: one row per image, the image first, then one column per method.

    Parameters
    ----------
    images : display images in [0, 1]: numpy (N, H, W, C) or tensor (N, C, H, W).
    maps : method name -> its attribution (N, C, H, W) for these images. A method whose maps
        have a negative value is drawn signed (diverging colormap), else as magnitudes.
    titles : column titles, one per method (default: the names in ``maps``).
    class_names : one label per row (e.g. ``"cat (p=0.93)"``), shown left of each image.
    max_columns : at most this many methods side by side; more wrap into further bands of
        rows, each with the images again (default: all methods in one band).

    Each map is scaled by its own max |value|; one colour bar per column gives the scale.
    Panels are 2.1 in wide, narrower (down to 1.25 in) so that the figure fits
    :data:`GRID_WIDTH` (a notebook's output area) when there are many columns.

    Example
    -------
    >>> maps = {name: get_method(name, model).attribute(x) for name in ("gradient", "prunegrad")}
    >>> fig = plot_method_grid(to_display_image(x, mean, std), maps, class_names=["cat", "dog"])
    >>> fig.savefig("grid.png")
    """
    names = list(maps)
    if not names:
        raise ValueError("maps is empty: give at least one method's maps")
    titles = list(titles) if titles is not None else names
    if len(titles) != len(names):
        raise ValueError(f"{len(titles)} titles for {len(names)} methods")
    n = len(images)
    for name in names:
        if len(maps[name]) != n:
            raise ValueError(f"maps[{name!r}] has {len(maps[name])} maps for {n} images")
    if class_names is not None and len(class_names) != n:
        raise ValueError(f"{len(class_names)} class names for {n} images")
    per_band = len(names) if max_columns is None else max(1, int(max_columns))
    bands = -(-len(names) // per_band)
    ncols = min(len(names), per_band) + 1
    side = min(2.1, max(1.25, GRID_WIDTH / ncols))  # inches per panel
    fig, axes = plt.subplots(
        n * bands,
        ncols,
        figsize=(side * ncols, (side * n + 1.2) * bands),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        _bare(ax)
    for band in range(bands):
        top = band * n  # the band's first row
        chunk = slice(band * per_band, (band + 1) * per_band)
        for row in range(n):
            _show_image(axes[top + row, 0], _image(images[row]))
            if class_names is not None:
                axes[top + row, 0].set_ylabel(class_names[row], fontsize=8)
        axes[top, 0].set_title("input", fontsize=9)
        shown = list(zip(names[chunk], titles[chunk]))
        for col, (name, title) in enumerate(shown, start=1):
            signed = _is_signed(maps[name])
            for row in range(n):
                im = _show_map(axes[top + row, col], _pixel_map(maps[name][row], signed), signed)
            axes[top, col].set_title(title, fontsize=9)
            fig.colorbar(
                im,
                ax=axes[top : top + n, col],
                location="bottom",
                shrink=0.8,
                label="signed / max" if signed else "|.| / max",
            )
        for col in range(len(shown) + 1, ncols):
            for row in range(n):
                axes[top + row, col].set_axis_off()
    fig.suptitle("Attribution maps by method (each map scaled by its own max |value|)", fontsize=10)
    fig.get_layout_engine().set(h_pad=0.07)  # room between the title and the column titles
    return fig


def plot_sparsity_sweep(
    image: Tensor | np.ndarray,
    maps_by_sparsity: Mapping[float, Tensor],
    title: str | None = None,
) -> Figure:
    """PruneGrad's map of one image as the sparsity grows: the image, then one panel per sparsity.

    Parameters
    ----------
    image : display image in [0, 1]: numpy (H, W, C) / (H, W) or tensor (C, H, W).
    maps_by_sparsity : sparsity (fraction of neurons pruned) -> that map (C, H, W); drawn in
        increasing sparsity; 0 is labelled as the plain gradient. Signed when any map has a
        negative value, each scaled by its own max |value|, one shared colour bar.

    Example
    -------
    >>> sweep = {s: PruneGrad(model, sparsity=s).attribute(x[:1])[0] for s in (0, 0.5, 0.9)}
    >>> fig = plot_sparsity_sweep(to_display_image(x[0], mean, std), sweep)
    >>> fig.savefig("sweep.png")
    """
    if not maps_by_sparsity:
        raise ValueError("maps_by_sparsity is empty: give at least one sparsity's map")
    levels = sorted(maps_by_sparsity)
    signed = any(_is_signed(maps_by_sparsity[s]) for s in levels)
    ncols = len(levels) + 1
    fig, axes = plt.subplots(
        1, ncols, figsize=(2.2 * ncols, 3.0), squeeze=False, layout="constrained"
    )
    axes = axes[0]
    _show_image(axes[0], _image(image))
    axes[0].set_title("input", fontsize=9)
    for ax, s in zip(axes[1:], levels):
        im = _show_map(ax, _pixel_map(maps_by_sparsity[s], signed), signed)
        ax.set_title("sparsity 0\n(plain gradient)" if s == 0 else f"sparsity {s:.2f}", fontsize=9)
    for ax in axes:
        _bare(ax)
    fig.colorbar(im, ax=list(axes[1:]), label=_SCALE_LABEL[signed], shrink=0.9)
    fig.suptitle(
        title or "PruneGrad map as the fraction of pruned neurons (sparsity) grows", fontsize=10
    )
    return fig
