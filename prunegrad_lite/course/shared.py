"""What every notebook of the course uses: sizes, the environment check, labels, the widget base.

Used by all nine notebooks (00-08) and by every other module of :mod:`prunegrad_lite.course`.

Smoke mode runs the *same* code on less work, so CI can execute every notebook in seconds:
set the environment variable ``PRUNEGRAD_LITE_SMOKE=1`` and every size chosen with
:func:`pick` takes its smoke value (the switch is :func:`prunegrad_lite.runtime.smoke_mode`).
Nothing here changes global state.

The widgets: a builder per notebook (in that notebook's module) takes everything it shows as
arguments (model, normalised inputs, display images, names): callbacks never read notebook
globals. Each widget pairs its controls with a pure function of their values (tested directly)
and a figure function; the last result, figure and PNG stay on the widget as
``widget.result``, ``widget.figure`` and ``widget.image.value``, so tests can set
``widget.controls[name].value`` and check what changed. Results are cached per combination of
control values: moving a slider back costs nothing. Maps are drawn clipped at their 99th
percentile of ``|map|`` (:func:`clip_maps`); ``widget.result`` holds the raw ones.

The course's figures, like the library's (:mod:`prunegrad_lite.figures`), return the
:class:`~matplotlib.figure.Figure` they drew, with labelled axes, a colour bar where colours
carry values, and a title that says what was measured; close them with ``plt.close(fig)``.
Images are display images in [0, 1]: tensors (C, H, W) or numpy (H, W[, C]).

Example
-------
>>> n_images = pick(64, 8)          # 64 normally, 8 when PRUNEGRAD_LITE_SMOKE=1
>>> print(environment())            # versions, device, threads, smoke mode, weights found
"""

from __future__ import annotations

import io
import platform
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.runtime import model_device, resolve_device
from prunegrad_lite.figures import _bare, _image, _show_image
from prunegrad_lite.maps import clip_percentile
from prunegrad_lite.runtime import SMOKE_ENV_VAR, smoke_mode

__all__ = [
    "SLIDER",
    "Environment",
    "LessonWidget",
    "MAX_FIGURE_PX",
    "check_display_images",
    "clip_maps",
    "environment",
    "fit_width",
    "image_control",
    "map_cosine",
    "markdown",
    "pick",
    "prediction_labels",
    "show_image",
    "sparsity_slider",
]

T = TypeVar("T")


def pick(normal: T, smoke: T) -> T:
    """``smoke`` in smoke mode, else ``normal``: how notebooks size their work.

    Example
    -------
    >>> steps = pick(50, 8)     # Integrated Gradients steps
    """
    return smoke if smoke_mode() else normal


@dataclass(frozen=True)
class Environment:
    """What a learner should check before starting: versions, device, threads, files."""

    python: str
    torch: str
    device: torch.device  # where the notebooks will compute
    device_name: str  # the GPU's name, or the CPU's architecture
    cpu_threads: int  # torch's intra-op threads
    smoke: bool  # smoke mode on?
    weights: dict[str, bool]  # model name -> are its default weights available offline?

    def __str__(self) -> str:
        rows = [
            ("python", self.python),
            ("torch", self.torch),
            ("device", f"{self.device} ({self.device_name})"),
            ("CPU threads", str(self.cpu_threads)),
            ("smoke mode", f"{self.smoke} (${SMOKE_ENV_VAR})"),
        ]
        rows += [
            (f"weights {name}", "found" if ok else "missing") for name, ok in self.weights.items()
        ]
        return "\n".join(f"{key:<28} {value}" for key, value in rows)


def environment(
    device: str | torch.device | None = None,
    models: Sequence[str] = ("fashion_mnist", "efficientnet_lite0"),
) -> Environment:
    """Versions, the device :func:`~prunegrad_lite.resolve_device` picks, and which weights exist.

    Nothing is downloaded: the weights check only looks for files and packages.

    Example
    -------
    >>> env = environment()
    >>> env.device.type in ("cpu", "cuda")
    True
    """
    from prunegrad_lite.models import weights_available

    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.machine() or "cpu"
    return Environment(
        python=platform.python_version(),
        torch=torch.__version__,
        device=dev,
        device_name=name,
        cpu_threads=torch.get_num_threads(),
        smoke=smoke_mode(),
        weights={m: weights_available(m) for m in models},
    )


def prediction_labels(
    model: nn.Module, inputs: Tensor, class_names: Sequence[str], batch_size: int = 64
) -> list[str]:
    """One label per input, ``"<predicted class> (p=0.93)"``, from the model's softmax.

    Inputs are moved to the model's device; the model is run without gradients.

    Example
    -------
    >>> prediction_labels(model, x[:2], data.classes)
    ['Ankle boot (p=0.97)', 'Pullover (p=0.88)']
    """
    device = model_device(model)
    labels: list[str] = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            probs = model(inputs[start : start + batch_size].to(device)).softmax(-1)  # (B, K)
            p, c = probs.max(dim=1)
            labels += [f"{class_names[int(k)]} (p={float(q):.2f})" for q, k in zip(p, c)]
    return labels


def markdown(text: str) -> Any:
    """``text`` as rendered Markdown in a notebook (e.g. a benchmark's ``to_markdown()`` table).

    Returns an ``IPython.display.Markdown`` object: the last expression of a cell displays it;
    outside a notebook its ``data`` attribute holds the text.

    Example
    -------
    >>> markdown(result.to_markdown())
    """
    from IPython.display import Markdown

    return Markdown(text)


def clip_maps(maps: Mapping[Hashable, Tensor], q: float = 99.0) -> dict[Hashable, Tensor]:
    """Each map clipped to ``[-p, p]``, ``p`` its ``q``-th percentile of ``|map|``, for display.

    Gradient maps have a few extreme pixels; scaled by their maximum the rest turns white.
    Clipping (as the attribution papers' figures do) keeps signs and shows the structure.
    Values are (N, C, H, W) batches, clipped per sample, or single (C, H, W) maps; keys (method
    names, sparsities) are kept. Only for drawing: rank pixels with the raw maps.

    Example
    -------
    >>> fig = plot_method_grid(images, clip_maps(run.maps))
    """
    out = {}
    for key, m in maps.items():
        out[key] = clip_percentile(m, q) if m.ndim == 4 else clip_percentile(m[None], q)[0]
    return out


def map_cosine(a: Tensor, b: Tensor) -> np.ndarray:
    """Cosine similarity of two batches of maps, per sample: (N,) in [-1, 1], float64.

    1 means the same map up to a positive scale, 0 unrelated (orthogonal) maps, -1 opposite ones.
    A map that is all zeros gives 0.

    Example
    -------
    >>> map_cosine(pgl.Gradient(model).attribute(x), pgl.PruneGrad(model).attribute(x))
    """
    a64, b64 = a.detach().flatten(1).double(), b.detach().flatten(1).double()
    cos = torch.nn.functional.cosine_similarity(a64, b64.to(a64.device), dim=1, eps=1e-300)
    return cos.cpu().numpy()


def show_image(ax, image: Tensor | np.ndarray, title: str | None = None) -> None:
    """Draw one display image in [0, 1] (tensor (C, H, W) or numpy (H, W[, C])) without ticks."""
    _show_image(ax, _image(image))
    _bare(ax)
    if title:
        ax.set_title(title, fontsize=8)


# ------------------------------------------------------------------------------ the widget base

#: The widest figure a widget shows, in pixels: a notebook's output area is about 920 px wide
#: in JupyterLab at a 1366 px wide window with the file browser open; a saved figure has a
#: margin of up to 20 px more (``bbox_inches="tight"``).
MAX_FIGURE_PX = 880

#: Keyword arguments of every slider: compute on release, and room for long descriptions.
SLIDER = {"continuous_update": False, "style": {"description_width": "initial"}}


class LessonWidget(widgets.VBox):
    """Controls, the picture they produce, and the pure computation and figure behind them.

    ``compute(**values)`` gets the controls' values by name and returns a result;
    ``draw(result, **values)`` returns a figure, rendered to PNG into :attr:`image` and closed.
    A result of ``None`` means there is nothing to compute for these values (e.g. no method
    selected): ``empty_message`` is shown instead of a figure.

    The figure is shown as an ``Image`` widget rather than captured in an ``Output`` widget:
    an ``Image`` is one value sent to the front end, so the widget behaves the same in
    JupyterLab, VS Code and a headless run (nbclient), and nothing is printed outside a kernel.

    Example
    -------
    >>> w = build_pruning_widget(model, x[:8])
    >>> w.controls["sparsity"].value = 0.5        # recomputes and redraws
    >>> w.result[0].kept_fraction                  # what the figure shows
    >>> w                                          # in a notebook: displays the widget
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
        # At its own size, shrunk (never stretched) to the output's width: a box's children
        # stretch across it by default, which blew a 640 px figure up to 1,470 px at 1920 wide.
        # No side margins: an image as wide as the output plus its 2 px margins made the box
        # scroll sideways.
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(align_self="flex-start", margin="2px 0px")
        )
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
        fig = fit_width(self._draw(self.result, **values))
        png = io.BytesIO()
        fig.savefig(png, format="png", bbox_inches="tight")
        plt.close(fig)
        self.figure = fig
        self.message.value = ""
        self.image.value = png.getvalue()
        self.image.layout.display = None


def fit_width(fig: Figure, max_px: int = MAX_FIGURE_PX) -> Figure:
    """``fig`` scaled down, keeping its proportions and font sizes, to at most ``max_px`` wide.

    A wider figure is shrunk by the browser to the notebook's width, and its text with it
    (an 1,800 px figure in a 920 px output shows 9-point text at 4 points). Returns ``fig``.
    """
    width = fig.get_figwidth() * fig.dpi
    if width > max_px:
        scale = max_px / width
        fig.set_size_inches(fig.get_figwidth() * scale, fig.get_figheight() * scale)
    return fig


def check_display_images(images: Tensor, display_images: Any | None) -> None:
    """Raise a ``ValueError`` unless there is one display image per input (or none at all)."""
    if display_images is not None and len(display_images) != len(images):
        raise ValueError(f"{len(display_images)} display images for {len(images)} inputs")


def image_control(n: int, names: Sequence[str] | None) -> widgets.ValueWidget:
    """The "image" control: a dropdown of ``names`` when given, else a slider over 0..n-1."""
    if names is not None:
        if len(names) != n:
            raise ValueError(f"{len(names)} image names for {n} images")
        return widgets.Dropdown(
            options=[(name, i) for i, name in enumerate(names)], value=0, description="image"
        )
    return widgets.IntSlider(value=0, min=0, max=n - 1, description="image", **SLIDER)


def sparsity_slider(value: float) -> widgets.FloatSlider:
    """The "sparsity" control: 0 to 0.99 in steps of 0.01, starting at ``value``."""
    return widgets.FloatSlider(
        value=value,
        min=0.0,
        max=0.99,
        step=0.01,
        description="sparsity",
        readout_format=".2f",
        **SLIDER,
    )
