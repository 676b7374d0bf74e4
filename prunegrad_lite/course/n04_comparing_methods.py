"""Notebook 04, comparing methods: every registered method's maps for the same inputs and targets.

Used by ``notebooks/04_comparing_methods.ipynb``; :func:`method_maps` also makes the maps of
the widgets of notebooks 00, 05, 06 and 07.

Example
-------
>>> run = method_maps(model, x, ["gradient", "integrated_gradients", "prunegrad"])
>>> fig = plot_method_grid(images, clip_maps(run.maps))
>>> print(format_timings(run))
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.base import TargetLike, check_inputs, check_model, resolve_target
from prunegrad_lite.attribution.registry import METHODS, get_method
from prunegrad_lite.course.shared import (
    LessonWidget,
    check_display_images,
    clip_maps,
    image_control,
    map_cosine,
    prediction_labels,
)
from prunegrad_lite.figures import plot_method_grid

__all__ = [
    "MethodMaps",
    "PassCounts",
    "answer_controls_ignore_the_model",
    "answer_grad_x_input",
    "answer_pass_counts",
    "format_similarity",
    "pass_counts",
    "build_method_widget",
    "method_maps",
    "describe_methods",
    "format_timings",
]


@dataclass
class MethodMaps:
    """Maps of several methods for the same inputs and targets, with the time each took."""

    maps: dict[str, Tensor]  # method -> (N, C, H, W), in the order asked for
    seconds: dict[str, float]  # method -> wall time of its attribute call
    target: Tensor  # (N,) the classes every method explained


def method_maps(
    model: nn.Module,
    inputs: Tensor,
    methods: Sequence[str],
    options: Mapping[str, dict] | None = None,
    target: TargetLike = None,
) -> MethodMaps:
    """Run each method of the registry (:data:`~prunegrad_lite.METHODS`) on the same inputs.

    ``target=None`` resolves the predicted class once, so every method explains the same class.
    ``options`` maps a method name to its constructor options, e.g.
    ``{"integrated_gradients": {"steps": 16}, "prunegrad": {"sparsity": 0.9}}``; methods not
    named there use their documented defaults.

    Example
    -------
    >>> run = method_maps(model, x, ["gradient", "prunegrad"], {"prunegrad": {"sparsity": 0.9}})
    >>> run.maps["prunegrad"].shape == x.shape
    True
    """
    options = dict(options or {})
    unknown = set(options) - set(methods)
    if unknown:
        raise ValueError(f"options given for methods not asked for: {sorted(unknown)}")
    check_model(model)
    x = check_inputs(model, inputs)
    with torch.no_grad():
        t = resolve_target(target, model(x))
    maps, seconds = {}, {}
    for name in methods:
        method = get_method(name, model, **options.get(name, {}))
        start = time.perf_counter()
        maps[name] = method.attribute(inputs, t).detach()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        seconds[name] = time.perf_counter() - start
    return MethodMaps(maps, seconds, t)


def format_timings(run: MethodMaps) -> str:
    """A plain-text table: method, seconds for the batch, milliseconds per image."""
    n = len(run.target)
    rows = [f"{'method':<22} {'seconds':>8} {'ms / image':>11}"]
    rows += [f"{k:<22} {s:>8.2f} {1000 * s / n:>11.1f}" for k, s in run.seconds.items()]
    return "\n".join(rows)


def describe_methods(names: Sequence[str] | None = None) -> str:
    """One line per registered method: its name and the first line of its docstring.

    The PruneGrad entries of the registry are built on first use, so they are described by
    PruneGrad's own summary and the options they fix.

    Example
    -------
    >>> print(describe_methods(["gradient", "prunegrad_random"]))
    """
    from prunegrad_lite.attribution.prunegrad import PruneGrad

    rows = []
    for name in METHODS if names is None else names:
        cls = METHODS[name]
        doc = cls.__dict__.get("__doc__")
        line = (doc or PruneGrad.__doc__).strip().splitlines()[0]
        fixed = getattr(cls, "fixed", {}) if not doc else {}  # a lazily built PruneGrad entry
        rows.append(f"{name:<22} {line}" + (f" With {fixed} fixed." if fixed else ""))
    return "\n".join(rows)


# -------------------------------------------------- the widget: chosen methods on a chosen image


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
    :func:`~prunegrad_lite.course.method_maps` result for the same ``images``) holds it.
    ``options`` are per-method constructor options as in ``method_maps``. The result is the
    :class:`~prunegrad_lite.course.MethodMaps` of the selected methods.
    """
    check_display_images(images, display_images)
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
                single[(image, name)] = method_maps(
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

    controls = {"image": image_control(len(images), image_names), "methods": picker}
    return LessonWidget(
        "Compare methods: pick an image and methods (ctrl/shift-click)",
        controls,
        compute,
        draw,
        empty_message="Select at least one method.",
    )


# -------------------------------------------------- cost in passes, and similarity to the gradient


@dataclass
class PassCounts:
    """What each method ran, per image: forward passes, and those that were backpropagated."""

    forward: dict[str, float]  # method -> forward passes per image (with or without a graph)
    backward: dict[str, float]  # method -> forward passes per image that built a graph

    def table(self) -> str:
        rows = [f"{'method':<22} {'forward':>8} {'of which backpropagated':>24}"]
        rows += [f"{m:<22} {self.forward[m]:>8g} {self.backward[m]:>24g}" for m in self.forward]
        return "\n".join(rows)


def pass_counts(
    model: nn.Module,
    inputs: Tensor,
    methods: Sequence[str],
    options: Mapping[str, dict] | None = None,
) -> PassCounts:
    """Count the passes each method makes through ``model``, per image: the cost in one unit.

    A forward hook on ``model`` adds up the samples of every call; a call that builds a graph
    (gradients enabled, an output that requires grad) is counted as backpropagated too, as
    every method here backpropagates each such pass once. Internal batching does not change the
    counts: a batch of 64 path points of 4 images counts 16 passes per image.

    Example
    -------
    >>> print(pass_counts(model, x, ["gradient", "integrated_gradients", "prunegrad"]).table())
    """
    options = dict(options or {})
    x = check_inputs(model, inputs)
    n = x.shape[0]
    log: list[tuple[int, bool]] = []

    def hook(module, args, output) -> None:
        graph = torch.is_grad_enabled() and isinstance(output, Tensor) and output.requires_grad
        log.append((int(output.shape[0]), graph))

    forward, backward = {}, {}
    handle = model.register_forward_hook(hook)
    try:
        for name in methods:
            log.clear()
            get_method(name, model, **options.get(name, {})).attribute(x)
            forward[name] = sum(k for k, _ in log) / n
            backward[name] = sum(k for k, g in log if g) / n
    finally:
        handle.remove()
    return PassCounts(forward, backward)


def format_similarity(run: MethodMaps, reference: str = "gradient") -> str:
    """Cosine similarity of every method's map with ``reference``'s, per image and on average.

    1 means the same map up to scale; a table, one row per method.
    """
    if reference not in run.maps:
        raise ValueError(f"{reference!r} is not among the computed methods {list(run.maps)}")
    n = len(run.target)
    head = f"{'cosine with ' + reference:<26} {'mean':>6}  per image"
    rows = [head]
    for name, m in run.maps.items():
        if name == reference:
            continue
        cos = map_cosine(run.maps[reference], m)
        per = " ".join(f"{c:>6.2f}" for c in cos[: min(n, 8)])
        rows.append(f"{name:<26} {cos.mean():>6.2f}  {per}")
    return "\n".join(rows)


# ---------------------------------------------------------------- exercises: the answers, checked


def answer_pass_counts(model: nn.Module, inputs: Tensor, steps: int = 4, samples: int = 3) -> str:
    """Check: Integrated Gradients with ``steps`` steps backpropagates ``steps`` passes per
    image, SmoothGrad with ``samples`` noisy copies ``samples``, PruneGrad 2, whatever the
    sparsity; Integrated Gradients and SmoothGrad also run one forward pass to find the predicted
    class, the gradient reads it off its own pass and PruneGrad off its scoring pass. Returns the
    table."""
    counts = pass_counts(
        model,
        inputs,
        ["gradient", "integrated_gradients", "smoothgrad", "prunegrad"],
        {"integrated_gradients": {"steps": steps}, "smoothgrad": {"samples": samples}},
    )
    assert counts.backward == {
        "gradient": 1,
        "integrated_gradients": steps,
        "smoothgrad": samples,
        "prunegrad": 2,
    }, counts.table()
    assert counts.forward["prunegrad"] == 2 and counts.forward["gradient"] == 1, counts.table()
    assert counts.forward["smoothgrad"] == samples + 1, counts.table()
    assert counts.forward["integrated_gradients"] == steps + 1, counts.table()
    return counts.table()


def answer_controls_ignore_the_model(model: nn.Module, inputs: Tensor, seed: int = 0) -> str:
    """Check: the edge control gives the same map for the trained model and for a copy with
    random weights; the plain gradient does not. Returns a summary."""
    import copy

    random_model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in random_model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen).to(p) * 0.1)
    x = check_inputs(model, inputs)
    edge = [get_method("edge", m).attribute(x) for m in (model, random_model)]
    grad = [get_method("gradient", m).attribute(x) for m in (model, random_model)]
    cos = map_cosine(*grad)
    assert torch.equal(*edge), "the edge map changed with the weights"
    assert (cos < 0.99).all(), "the gradient should change with the weights"
    return (
        "edge: the same map for trained and random weights (bit for bit); gradient: cosine "
        f"similarity trained vs random {np.round(cos, 2).tolist()}"
    )


def answer_grad_x_input(model: nn.Module, inputs: Tensor) -> str:
    """Check: Gradient x Input is the input times the plain gradient, element by element."""
    x = check_inputs(model, inputs)
    gxi = get_method("grad_x_input", model).attribute(x)
    product = x * get_method("gradient", model).attribute(x)
    torch.testing.assert_close(gxi, product)
    return f"max |grad_x_input - x * gradient| = {(gxi - product).abs().max().item():.1e}"
