"""The course's widgets: one builder per notebook, each returning a :class:`LessonWidget`.

A builder takes everything it shows as arguments (model, normalised inputs, display images,
names): callbacks never read notebook globals. Each widget pairs its controls with a pure
function of their values (from :mod:`prunegrad_lite.lessons`, tested directly) and a figure
function; the last result, figure and PNG stay on the widget as ``widget.result``,
``widget.figure`` and ``widget.image.value``, so tests can set ``widget.controls[name].value``
and check what changed.
Results are cached per combination of control values: moving a slider back costs nothing.
Maps are drawn clipped at their 99th percentile of ``|map|`` (:func:`~prunegrad_lite.clip_maps`);
``widget.result`` holds the raw ones.

Example
-------
>>> w = build_pruning_widget(model, x[:8])
>>> w.controls["sparsity"].value = 0.5        # recomputes and redraws
>>> w.result[0].kept_fraction                  # what the figure shows
>>> w                                          # in a notebook: displays the widget
"""

from __future__ import annotations

import io
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.figures import plot_method_grid, plot_sparsity_sweep
from prunegrad_lite.lesson_figures import (
    plot_channel_scores,
    plot_kept_per_site,
    plot_removed_pixels,
    plot_scores,
)
from prunegrad_lite.lessons.comparison import MethodMaps, clip_maps, compute_maps
from prunegrad_lite.lessons.neurons import taylor_parts, top_channels
from prunegrad_lite.lessons.perturbation import sparsity_maps
from prunegrad_lite.lessons.pruning import pruning_sweep
from prunegrad_lite.lessons.randomisation import cascading_maps
from prunegrad_lite.lessons.removal import perturbed_images, roar_images
from prunegrad_lite.maps import to_display_image
from prunegrad_lite.teaching import prediction_labels

__all__ = [
    "LessonWidget",
    "build_first_map_widget",
    "build_method_widget",
    "build_neuron_importance_widget",
    "build_pixel_perturbation_widget",
    "build_prunegrad_widget",
    "build_pruning_widget",
    "build_roar_widget",
    "build_sanity_widget",
    "build_scores_widget",
]

_SLIDER = {"continuous_update": False, "style": {"description_width": "initial"}}


class LessonWidget(widgets.VBox):
    """Controls, the picture they produce, and the pure computation and figure behind them.

    ``compute(**values)`` gets the controls' values by name and returns a result;
    ``draw(result, **values)`` returns a figure, rendered to PNG into :attr:`image` and closed.
    A result of ``None`` means there is nothing to compute for these values (e.g. no method
    selected): ``empty_message`` is shown instead of a figure.

    The figure is shown as an ``Image`` widget rather than captured in an ``Output`` widget:
    an ``Image`` is one value sent to the front end, so the widget behaves the same in
    JupyterLab, VS Code and a headless run (nbclient), and nothing is printed outside a kernel.
    """

    def __init__(
        self,
        title: str,
        controls: Mapping[str, widgets.ValueWidget],
        compute: Callable[..., Any],
        draw: Callable[..., Figure],
        empty_message: str = "Nothing to show for these values.",
    ) -> None:
        super().__init__()
        self.controls = dict(controls)
        self.image = widgets.Image(format="png")
        self.message = widgets.HTML()
        self.result: Any = None  # what the figure shows, for the current control values
        self.figure: Figure | None = None  # the last figure drawn (closed once rendered)
        self._compute, self._draw, self._empty = compute, draw, empty_message
        self._cache: dict[Hashable, Any] = {}
        self.children = [
            widgets.HTML(f"<b>{title}</b>"),
            widgets.HBox(list(self.controls.values())),
            self.message,
            self.image,
        ]
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.refresh()

    @property
    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def _changed(self, change: dict) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Compute (or reuse) the result for the current values and redraw the figure."""
        values = self.values
        key = tuple(values.items())
        if key not in self._cache:
            self._cache[key] = self._compute(**values)
        self.result = self._cache[key]
        if self.result is None:
            self.figure = None
            self.message.value = self._empty
            self.image.layout.display = "none"
            return
        fig = self._draw(self.result, **values)
        png = io.BytesIO()
        fig.savefig(png, format="png", bbox_inches="tight")
        plt.close(fig)
        self.figure = fig
        self.message.value = ""
        self.image.value = png.getvalue()
        self.image.layout.display = None


def _check_images(images: Tensor, display_images: Any | None) -> None:
    if display_images is not None and len(display_images) != len(images):
        raise ValueError(f"{len(display_images)} display images for {len(images)} inputs")


def _image_control(n: int, names: Sequence[str] | None) -> widgets.ValueWidget:
    if names is not None:
        if len(names) != n:
            raise ValueError(f"{len(names)} image names for {n} images")
        return widgets.Dropdown(
            options=[(name, i) for i, name in enumerate(names)], value=0, description="image"
        )
    return widgets.IntSlider(value=0, min=0, max=n - 1, description="image", **_SLIDER)


def build_first_map_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    class_names: Sequence[str],
    image_names: Sequence[str] | None = None,
) -> LessonWidget:
    """Notebook 00: pick an image, see its plain gradient and its PruneGrad map side by side.

    ``images`` are normalised model inputs (N, C, H, W); ``display_images`` the same images in
    [0, 1] for drawing; PruneGrad uses the model's default sparsity.
    """
    _check_images(images, display_images)

    def compute(image: int) -> MethodMaps:
        return compute_maps(model, images[image : image + 1], ["gradient", "prunegrad"])

    def draw(result: MethodMaps, image: int) -> Figure:
        label = prediction_labels(model, images[image : image + 1], class_names)
        return plot_method_grid(
            display_images[image : image + 1],
            clip_maps(result.maps),
            titles=["gradient", "PruneGrad"],
            class_names=label,
        )

    return LessonWidget(
        "Your first PruneGrad map: pick an image",
        {"image": _image_control(len(images), image_names)},
        compute,
        draw,
    )


def build_neuron_importance_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    top: int = 8,
) -> LessonWidget:
    """Notebook 01: pick an image and an activation site, see its highest-scoring channels.

    The result is ``(channels, maps)`` from :func:`~prunegrad_lite.lessons.top_channels` on the
    Taylor scores ``|a dS_c/da|`` of the predicted class.
    """
    _check_images(images, display_images)
    sites = taylor_parts(model, images[:1]).sites
    site_control = widgets.Dropdown(
        options=[(f"{s.index}: {s.name} {'x'.join(map(str, s.shape))}", s.index) for s in sites],
        value=0,
        description="layer",
    )
    parts_cache: dict[int, Any] = {}

    def compute(image: int, layer: int) -> tuple[list[int], Tensor]:
        if image not in parts_cache:  # one forward/backward per image serves every layer
            parts_cache[image] = taylor_parts(model, images[image : image + 1])
        return top_channels(parts_cache[image].scores[layer], sample=0, k=top)

    def draw(result: tuple[list[int], Tensor], image: int, layer: int) -> Figure:
        channels, maps = result
        return plot_channel_scores(channels, maps, display_images[image], sites[layer].name)

    controls = {"image": _image_control(len(images), None), "layer": site_control}
    return LessonWidget(
        "Channel score maps |a dS_c/da|: pick an image and a layer", controls, compute, draw
    )


def build_pruning_widget(
    model: nn.Module, images: Tensor, sparsity: float = 0.9, threshold: str = "global"
) -> LessonWidget:
    """Notebook 02: a sparsity slider showing what each layer keeps and the target probability.

    The result is ``(taylor, random)``: two one-level
    :class:`~prunegrad_lite.lessons.PruningSweep` over all ``images`` (Taylor scores and the
    random-pruning control); the figure shows their mean kept fraction per site.
    """
    control = widgets.FloatSlider(
        value=sparsity,
        min=0.0,
        max=0.99,
        step=0.01,
        description="sparsity",
        readout_format=".2f",
        **_SLIDER,
    )

    def compute(sparsity: float) -> tuple:
        taylor = pruning_sweep(model, images, [sparsity], threshold=threshold)
        random = pruning_sweep(model, images, [sparsity], threshold=threshold, scoring="random")
        return taylor, random

    def draw(result: tuple, sparsity: float) -> Figure:
        return plot_kept_per_site(result, level=0)

    return LessonWidget(
        "Input-specific pruning: move the sparsity", {"sparsity": control}, compute, draw
    )


def build_prunegrad_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    sparsity: float = 0.9,
    image_names: Sequence[str] | None = None,
) -> LessonWidget:
    """Notebook 03: sparsity and image, showing the plain gradient next to PruneGrad's map.

    The result is a :class:`~prunegrad_lite.lessons.SparsityMaps` at sparsities 0 (the plain
    gradient) and the slider's value; the title gives the target probability change.
    """
    _check_images(images, display_images)
    control = widgets.FloatSlider(
        value=sparsity,
        min=0.0,
        max=0.99,
        step=0.01,
        description="sparsity",
        readout_format=".2f",
        **_SLIDER,
    )

    def compute(sparsity: float, image: int):
        return sparsity_maps(model, images[image : image + 1], sorted({0.0, sparsity}))

    def draw(result, sparsity: float, image: int) -> Figure:
        title = (
            f"Gradient of the network pruned at sparsity {sparsity:.2f}:\n"
            f"{result.kept_fraction[sparsity][0]:.1%} of neurons kept, p(target) "
            f"{result.prob[0]:.3f} -> {result.pruned_prob[sparsity][0]:.3f}"
        )
        maps = clip_maps(result.of_sample(0))
        return plot_sparsity_sweep(display_images[image], maps, title=title)

    controls = {"sparsity": control, "image": _image_control(len(images), image_names)}
    return LessonWidget("PruneGrad: move the sparsity, pick an image", controls, compute, draw)


def build_method_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    class_names: Sequence[str],
    methods: Sequence[str],
    options: Mapping[str, dict] | None = None,
    selected: Sequence[str] | None = None,
    image_names: Sequence[str] | None = None,
    precomputed: MethodMaps | None = None,
) -> LessonWidget:
    """Notebook 04: pick an image and any of ``methods``, see their maps side by side.

    Each (image, method) map is computed once, when first shown, unless ``precomputed`` (a
    :func:`~prunegrad_lite.lessons.compute_maps` result for the same ``images``) holds it.
    ``options`` are per-method constructor options as in ``compute_maps``. The result is the
    :class:`~prunegrad_lite.lessons.MethodMaps` of the selected methods.
    """
    _check_images(images, display_images)
    options = dict(options or {})
    chosen = tuple(selected) if selected is not None else tuple(methods[:3])
    picker = widgets.SelectMultiple(
        options=list(methods), value=chosen, description="methods", rows=min(len(methods), 8)
    )
    single: dict[tuple[int, str], MethodMaps] = {}
    if precomputed is not None:
        if len(precomputed.target) != len(images):
            raise ValueError(
                f"precomputed maps are for {len(precomputed.target)} images, not {len(images)}"
            )
        n = len(images)
        for name, maps in precomputed.maps.items():
            for i in range(n):
                single[(i, name)] = MethodMaps(
                    {name: maps[i : i + 1]},
                    {name: precomputed.seconds[name] / n},
                    precomputed.target[i : i + 1],
                )

    def compute(image: int, methods: tuple[str, ...]) -> MethodMaps | None:
        if not methods:
            return None
        for name in methods:
            if (image, name) not in single:
                single[(image, name)] = compute_maps(
                    model, images[image : image + 1], [name], {name: options.get(name, {})}
                )
        runs = [single[(image, name)] for name in methods]
        return MethodMaps(
            {n: r.maps[n] for n, r in zip(methods, runs)},
            {n: r.seconds[n] for n, r in zip(methods, runs)},
            runs[0].target,
        )

    def draw(result: MethodMaps, image: int, methods: tuple[str, ...]) -> Figure:
        label = prediction_labels(model, images[image : image + 1], class_names)
        maps = clip_maps(result.maps)
        return plot_method_grid(display_images[image : image + 1], maps, class_names=label)

    controls = {"image": _image_control(len(images), image_names), "methods": picker}
    return LessonWidget(
        "Compare methods: pick an image and methods (ctrl/shift-click)",
        controls,
        compute,
        draw,
        empty_message="Select at least one method.",
    )


def _display(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised (N, C, H, W) -> display images (N, H, W, C) in [0, 1]."""
    return to_display_image(images, mean, std)


def build_sanity_widget(
    model: nn.Module,
    images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    methods: Sequence[str],
    method_options: Mapping[str, dict] | None = None,
    depth: int | None = None,
    seed: int = 0,
) -> LessonWidget:
    """Notebook 05: a stage slider showing every method's maps as the model is randomised.

    All stages are computed when the widget is built (:func:`~prunegrad_lite.cascading_maps`,
    the sanity checks' stages and weights); ``mean``/``std`` are the normalisation in [0, 1]
    pixel units, for display. The result is the method -> maps dict of the chosen stage.
    """
    cascade = cascading_maps(
        model, images, methods, depth=depth, seed=seed, method_options=method_options
    )
    shown = _display(images, mean, std)
    labels = ["original" if i == 0 else f"{i}: {name}" for i, name in enumerate(cascade.stages)]
    control = widgets.SelectionSlider(
        options=[(label, i) for i, label in enumerate(labels)], value=0,
        description="randomised down to", layout=widgets.Layout(width="60%"), **_SLIDER,
    )  # fmt: skip

    def compute(stage: int) -> dict[str, Tensor]:
        return cascade.maps[stage]

    def draw(result: dict[str, Tensor], stage: int) -> Figure:
        fig = plot_method_grid(shown, clip_maps(result))
        what = "the original model" if stage == 0 else (
            f"stages 1-{stage} randomised (logits down to {cascade.stages[stage]})"
        )  # fmt: skip
        fig.suptitle(f"Maps of {what}: a method that passes changes", fontsize=10)
        fig.get_layout_engine().set(h_pad=0.12)  # room between this title and the column titles
        return fig

    return LessonWidget("Cascading randomisation: move down the network", {"stage": control},
                        compute, draw)  # fmt: skip


def build_pixel_perturbation_widget(
    model: nn.Module,
    images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    methods: Sequence[str],
    method_options: Mapping[str, dict] | None = None,
    replacement: str | float = "mean",
) -> LessonWidget:
    """Notebook 06: a fraction slider and LeRF/MoRF, showing the perturbed images and the change.

    Maps are computed once when the widget is built. The result is a
    :class:`~prunegrad_lite.PerturbedImages` (the modified images and ``|p - p'| / p`` per
    method); ``replacement`` as in :class:`~prunegrad_lite.PixelPerturbationConfig`.
    """
    options = {m: o for m, o in (method_options or {}).items() if m in methods}
    maps = compute_maps(model, images, methods, options).maps
    shown = _display(images, mean, std)
    fraction = widgets.FloatSlider(value=0.1, min=0.01, max=0.5, step=0.01,
                                   description="fraction removed", readout_format=".0%",
                                   **_SLIDER)  # fmt: skip
    order = widgets.ToggleButtons(
        options=[("LeRF (least relevant first)", "lerf"), ("MoRF (most relevant first)", "morf")],
        value="lerf",
        style={"button_width": "auto"},  # the default width cuts the labels off
    )

    def compute(fraction: float, order: str):
        return perturbed_images(model, images, maps, fraction, order, replacement,
                                mean=mean, std=std)  # fmt: skip

    def draw(result, fraction: float, order: str) -> Figure:
        modified = {m: _display(x, mean, std) for m, x in result.images.items()}
        title = (f"{order.upper()}: the {fraction:.0%} {'least' if order == 'lerf' else 'most'}"
                 f" important pixels replaced ({replacement}); lower change is better for LeRF,"
                 " higher for MoRF")  # fmt: skip
        return plot_removed_pixels(shown, modified, result.change, title)

    return LessonWidget("Pixel perturbation: move the fraction, switch the order",
                        {"fraction": fraction, "order": order}, compute, draw)  # fmt: skip


def build_roar_widget(
    model: nn.Module,
    images: Tensor,
    fill: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    methods: Sequence[str],
    method_options: Mapping[str, dict] | None = None,
) -> LessonWidget:
    """Notebook 07: a fraction slider showing the ROAR-modified training images per method.

    ``fill`` (C,) is the per-channel mean of the training images (what ROAR puts in place of
    the removed pixels). Maps are computed once when the widget is built. The result is a
    :class:`~prunegrad_lite.PerturbedImages` with ``order="roar"``.
    """
    options = {m: o for m, o in (method_options or {}).items() if m in methods}
    maps = compute_maps(model, images, methods, options).maps
    shown = _display(images, mean, std)
    control = widgets.SelectionSlider(options=[("10%", 0.1), ("30%", 0.3), ("50%", 0.5),
                                               ("70%", 0.7), ("90%", 0.9)], value=0.5,
                                      description="top pixels removed", **_SLIDER)  # fmt: skip

    def compute(fraction: float):
        return roar_images(model, images, maps, fraction, fill)

    def draw(result, fraction: float) -> Figure:
        modified = {m: _display(x, mean, std) for m, x in result.images.items()}
        title = (f"ROAR: the top {fraction:.0%} pixels of each method replaced by the training "
                 "mean; a network is retrained on such images")  # fmt: skip
        return plot_removed_pixels(shown, modified, None, title)

    return LessonWidget("ROAR: move the fraction of removed pixels", {"fraction": control},
                        compute, draw)  # fmt: skip


def build_scores_widget(results: Mapping[str, BenchmarkResult]) -> LessonWidget:
    """Notebook 08: pick a benchmark score, see it for every method (mean ± std).

    ``results`` maps a benchmark name to its result, e.g. ``course.results``. The result is
    the list of :class:`~prunegrad_lite.benchmarks.Score` shown.
    """
    options = [(f"{b}: {name}", (b, name)) for b, r in results.items() for name in r.score_names()]
    if not options:
        raise ValueError("no scores in the results")
    control = widgets.Dropdown(options=options, value=options[0][1], description="score",
                               layout=widgets.Layout(width="50%"))  # fmt: skip

    def compute(score: tuple[str, str]) -> list:
        bench, name = score
        return [s for s in results[bench].scores if s.name == name]

    def draw(result: list, score: tuple[str, str]) -> Figure:
        return plot_scores(results[score[0]], score[1])

    return LessonWidget("Every method on one score", {"score": control}, compute, draw)
