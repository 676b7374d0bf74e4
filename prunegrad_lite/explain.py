"""The package's main job in one call: explain shipped-model predictions and draw the maps.

Used by ``prunegrad-lite explain`` and usable from Python; the figure comes from
:func:`prunegrad_lite.figures.plot_method_grid`, so the CLI and the notebooks draw the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from prunegrad_lite.attribution.prunegrad import PruneGrad, PruneGradExplanation
from prunegrad_lite.attribution.pruning import check_sparsity
from prunegrad_lite.attribution.registry import METHODS, get_method
from prunegrad_lite.data import OBJECT_PHOTOS, imagenet_classes, load_dataset, load_photos
from prunegrad_lite.figures import plot_method_grid
from prunegrad_lite.maps import CLIP_PERCENTILE, clip_percentile, to_display_image
from prunegrad_lite.models import load_model, model_info

__all__ = ["EXPLAIN_MODELS", "ExplainResult", "explain_examples"]


@dataclass
class ExplainResult:
    """What :func:`explain_examples` computed: the figure, the maps and PruneGrad's details."""

    figure: Figure
    maps: dict[str, torch.Tensor]  # method name -> (N, C, H, W)
    explanation: PruneGradExplanation  # PruneGrad's steps for the same images
    labels: list[str]  # one row label per image


def _inputs(model_name: str, indices: Sequence[int] | None, photos: Sequence[str] | None):
    """(inputs (N, C, H, W), display images, class names, true labels or None)."""
    if model_name == "fashion_mnist":
        indices = DEFAULT_INDICES if indices is None else indices
        data = load_dataset("fashion_mnist", split="test")
        if any(not 0 <= i < len(data) for i in indices):
            raise ValueError(f"--index must be in 0..{len(data) - 1} (the shipped test subset)")
        x = data.images[list(indices)]
        return x, to_display_image(x, data.mean, data.std), data.classes, data.labels[list(indices)]
    if model_name == "efficientnet_lite0":
        x, names = load_photos(list(photos) if photos else list(OBJECT_PHOTOS))
        info = model_info(model_name).preprocessing
        display = to_display_image(x, info.mean, info.std)  # [0, 1] pixel units
        return x, display, imagenet_classes(), None
    raise ValueError(  # (explain_examples checks the name first; kept for direct calls)
        f"explain works on the offline models 'fashion_mnist' and 'efficientnet_lite0', "
        f"got {model_name!r}; for your own model use prunegrad_lite.PruneGrad directly"
    )


DEFAULT_INDICES = (0, 1, 2, 3)
EXPLAIN_MODELS = ("fashion_mnist", "efficientnet_lite0")


def _check_request(
    model_name: str,
    indices: Sequence[int] | None,
    photos: Sequence[str] | None,
    methods: Sequence[str],
    sparsity: float | None,
) -> None:
    """Refuse a request that cannot be honoured before any model is loaded or map computed."""
    if model_name not in EXPLAIN_MODELS:
        raise ValueError(
            f"explain works on the offline models 'fashion_mnist' and 'efficientnet_lite0', "
            f"got {model_name!r}; for your own model use prunegrad_lite.PruneGrad directly"
        )
    if model_name == "fashion_mnist" and photos:
        raise ValueError(
            "photos (--photo) are for the ImageNet model efficientnet_lite0; the Fashion-MNIST "
            "model explains test-subset images chosen with indices (--index)"
        )
    if model_name == "efficientnet_lite0" and indices is not None:
        raise ValueError(
            "indices (--index) choose Fashion-MNIST test images; for efficientnet_lite0 "
            "choose photographs with photos (--photo)"
        )
    if indices is not None:
        if isinstance(indices, (str, bytes)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in indices
        ):
            raise TypeError(f"indices must be a sequence of ints, got {indices!r}")
        if not indices:
            raise ValueError("indices is empty: give at least one image index")
    if not methods:
        raise ValueError(f"give at least one method; known: {', '.join(METHODS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(
            f"unknown attribution method(s) {', '.join(map(repr, unknown))}; "
            f"known methods: {', '.join(METHODS)}"
        )
    if sparsity is not None:
        check_sparsity(sparsity)


def explain_examples(
    model_name: str = "fashion_mnist",
    indices: Sequence[int] | None = None,
    photos: Sequence[str] | None = None,
    methods: Sequence[str] = ("gradient", "integrated_gradients", "gradcam", "prunegrad"),
    sparsity: float | None = None,
    device: str | torch.device | None = None,
) -> ExplainResult:
    """Explain the shipped model's predictions on a few images with several methods.

    ``model_name`` "fashion_mnist" takes test-subset images by ``indices`` (default 0..3);
    "efficientnet_lite0" takes the real photographs named in ``photos`` (default: the colour
    photographs of ImageNet-like objects, ``data.OBJECT_PHOTOS``).
    Giving ``photos`` to the first or ``indices`` to the second is an error, as are unknown
    method names and a sparsity outside [0, 1): all checked before any work. ``sparsity`` None
    uses the model's calibrated default. Every map explains the predicted class.

    Example
    -------
    >>> result = explain_examples("fashion_mnist", indices=[0, 1])
    >>> result.figure.savefig("maps.png"); print(result.explanation.layer_table())
    """
    methods = list(methods)
    _check_request(model_name, indices, photos, methods, sparsity)
    model = load_model(model_name, device=device)
    x, display, classes, labels = _inputs(model_name, indices, photos)
    explanation = PruneGrad(model, sparsity).explain(x)
    maps = {}
    for name in methods:
        options = (
            {"sparsity": sparsity} if name.startswith("prune") and sparsity is not None else {}
        )
        maps[name] = get_method(name, model, **options).attribute(x, explanation.target)
    rows = []
    for n, c in enumerate(explanation.target.tolist()):
        row = f"{classes[c]} (p={explanation.prob[n].item():.2f})"
        if labels is not None and int(labels[n]) != c:
            row += f"\ntrue: {classes[int(labels[n])]}"
        rows.append(row)
    # outlier pixels would set every colour scale alone: clip at a high percentile of |map|
    shown = {name: clip_percentile(m, CLIP_PERCENTILE) for name, m in maps.items()}
    figure = plot_method_grid(display, shown, class_names=rows)
    figure.suptitle(
        f"{model_name}: maps of the predicted class (clipped at the {CLIP_PERCENTILE:g}th "
        "percentile)\n"
        f"PruneGrad sparsity {explanation.sparsity:g}: "
        f"{explanation.kept_fraction.mean().item():.1%} of neurons kept"
    )
    return ExplainResult(figure, maps, explanation, rows)
