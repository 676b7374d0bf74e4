"""Notebook 03, PruneGrad: its map at several sparsities, and the widgets that move them.

Used by ``notebooks/03_prunegrad.ipynb``.

PruneGrad's map is ``dS_c^pruned / dx``, the gradient of the network pruned for this input.
:func:`sparsity_maps` computes it at several sparsities from one set of scores (sparsity 0 is
the plain gradient); :func:`build_prunegrad_widget` moves the sparsity and
:func:`build_target_class_widget` the explained class. Whether that gradient is the best local
perturbation (the paper's reading) is checked in :mod:`.n03_perturbation`.

Example
-------
>>> sweep = sparsity_maps(model, x[:1], [0.0, 0.5, 0.9])     # sweep.maps[0.9]: (1, C, H, W)
>>> fig = plot_sparsity_sweep(image, sweep.of_sample(0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.base import (
    TargetLike,
    check_inputs,
    check_model,
    input_gradient,
    preserve_model_state,
)
from prunegrad_lite.attribution.relu6 import clip_treatment_options
from prunegrad_lite.attribution.pruning import (
    apply_masks,
    check_sparsity,
    neuron_scores,
    masks_from_scores,
)
from prunegrad_lite.benchmarks.pixel_perturbation import probability_change
from prunegrad_lite.course.shared import (
    LessonWidget,
    check_display_images,
    clip_maps,
    image_control,
    sparsity_slider,
)
from prunegrad_lite.figures import plot_sparsity_sweep

__all__ = [
    "SparsityMaps",
    "build_prunegrad_widget",
    "build_target_class_widget",
    "sparsity_maps",
]


@dataclass
class SparsityMaps:
    """PruneGrad's maps of the same inputs at several sparsities, from one set of scores."""

    maps: dict[float, Tensor]  # sparsity -> (N, C, H, W) signed maps, on the inputs' device
    kept_fraction: dict[float, np.ndarray]  # sparsity -> (N,) fraction of neurons kept
    prob: np.ndarray  # (N,) target probability of the unpruned network
    pruned_prob: dict[float, np.ndarray]  # sparsity -> (N,) of the pruned network
    target: Tensor  # (N,)

    def of_sample(self, sample: int = 0) -> dict[float, Tensor]:
        """Sparsity -> the map of one sample (C, H, W): what ``plot_sparsity_sweep`` takes."""
        return {s: m[sample] for s, m in self.maps.items()}

    def change(self, sparsity: float) -> np.ndarray:
        """Relative change of the target probability at ``sparsity``, ``|p - p'| / p`` (N,)."""
        return probability_change(
            torch.as_tensor(self.prob), torch.as_tensor(self.pruned_prob[sparsity])
        ).numpy()


def sparsity_maps(
    model: nn.Module,
    inputs: Tensor,
    sparsities: Sequence[float],
    target: TargetLike = None,
    clip_treatment: str = "auto",
) -> SparsityMaps:
    """PruneGrad at each sparsity: Taylor scores once, then masks and one gradient per sparsity.

    Equal to ``PruneGrad(model, sparsity=s, clip_treatment=clip_treatment).attribute(inputs,
    target)`` for every ``s``, at the cost of 1 + S forward/backward passes instead of 2 S.
    Sparsity 0 gives the plain gradient.

    Example
    -------
    >>> sweep = sparsity_maps(model, x[:1], [0.0, 0.5, 0.9, 0.99])
    >>> fig = plot_sparsity_sweep(image, sweep.of_sample(0))
    """
    levels = [check_sparsity(s) for s in sparsities]
    check_model(model)
    x = check_inputs(model, inputs)
    maps, kept, pruned = {}, {}, {}
    with preserve_model_state(model):
        rule, st = clip_treatment_options(clip_treatment)
        scores = neuron_scores(model, x, target, "taylor", straight_through=st)
        t = scores.target
        for s in levels:
            masks = masks_from_scores(scores, s, rule=rule)
            with apply_masks(model, masks):
                grad, logits = input_gradient(model, x, t)
            maps[s] = grad.detach().to(inputs.device)
            kept[s] = masks.kept_fraction.cpu().numpy()
            pruned[s] = (
                logits.softmax(-1).gather(1, t.view(-1, 1)).squeeze(1).cpu().double().numpy()
            )
    prob = scores.logits.softmax(-1).gather(1, t.view(-1, 1)).squeeze(1).cpu().double().numpy()
    return SparsityMaps(maps, kept, prob, pruned, t)


# -------------------------------------------------- the widget: PruneGrad's map as sparsity moves


def build_prunegrad_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    sparsity: float = 0.9,
    image_names: Sequence[str] | None = None,
) -> LessonWidget:
    """Notebook 03: sparsity and image, showing the plain gradient next to PruneGrad's map.

    The result is a :class:`~prunegrad_lite.course.SparsityMaps` at sparsities 0 (the plain
    gradient) and the slider's value; the title gives the target probability change.
    """
    check_display_images(images, display_images)
    control = sparsity_slider(sparsity)

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

    controls = {"sparsity": control, "image": image_control(len(images), image_names)}
    return LessonWidget("PruneGrad: move the sparsity, pick an image", controls, compute, draw)


# -------------------------------------------------- the widget: which class is explained


def build_target_class_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    class_names: Sequence[str],
    sparsity: float = 0.9,
    image_names: Sequence[str] | None = None,
) -> LessonWidget:
    """Notebook 03: pick an image and the class to explain; gradient and PruneGrad of that class.

    PruneGrad is class-specific: the Taylor scores, hence the masks, are those of the chosen
    class's logit. The result is a :class:`SparsityMaps` at sparsities 0 (the plain gradient of
    the class) and ``sparsity``, for the chosen class; the title says which class is explained,
    its probability, and what the network predicts.
    """
    check_display_images(images, display_images)
    sparsity = check_sparsity(sparsity)
    k = len(class_names)
    target = widgets.Dropdown(
        options=[(f"{c}: {name}", c) for c, name in enumerate(class_names)],
        value=0,
        description="explained class",
        style={"description_width": "initial"},
    )
    with torch.no_grad():
        predicted = model(check_inputs(model, images[:1])).argmax(1)
    target.value = int(predicted[0]) if int(predicted[0]) < k else 0

    def compute(image: int, target: int) -> SparsityMaps:
        return sparsity_maps(model, images[image : image + 1], sorted({0.0, sparsity}), target)

    def draw(result: SparsityMaps, image: int, target: int) -> Figure:
        with torch.no_grad():
            probs = model(check_inputs(model, images[image : image + 1])).softmax(-1)[0]
        top = int(probs.argmax())
        title = (
            f"explained class: {class_names[target]} (p={float(probs[target]):.3f}); "
            f"the network predicts {class_names[top]} (p={float(probs[top]):.3f})\n"
            f"PruneGrad at sparsity {sparsity:.2f}: {result.kept_fraction[sparsity][0]:.1%} of "
            f"neurons kept, p(class) {result.prob[0]:.3f} -> {result.pruned_prob[sparsity][0]:.3f}"
        )
        return plot_sparsity_sweep(
            display_images[image], clip_maps(result.of_sample(0)), title=title
        )

    controls = {"image": image_control(len(images), image_names), "target": target}
    return LessonWidget(
        "PruneGrad is class-specific: pick the class to explain", controls, compute, draw
    )
