"""Notebook 08, putting it together: every method on one benchmark score, and a widget to pick it.

Used by ``notebooks/08_putting_it_together.ipynb`` (its results come from
:func:`~prunegrad_lite.course.n07_roar.course_results`).

* :func:`claim_counts`: how many of the follow-up paper's claims a run agrees with, per
  benchmark, read from the results (the conclusion of the notebook prints it, never states it);
* :func:`load_my_photos` and :func:`explain_images`: explain the learner's own photographs
  (a folder, with a shipped photograph when it is empty) and any ``nn.Module``;
* the exercises' answers: :func:`second_class_answer` (explain a second class) and
  :func:`sparsity_answer` (why a sparsity is calibrated per model).

Example
-------
>>> course = course_results(["sanity", "pixel", "roar"])
>>> fig = plot_scores(course.results["pixel"], "lerf@1%")
>>> build_scores_widget(course.results)
>>> photos = load_my_photos("my_images")      # your photographs, or a shipped one
>>> explain_images(imagenet, photos.images, photos.display, imagenet_classes()).figure
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.prunegrad import PruneGrad
from prunegrad_lite.benchmarks.paper import NOT_CHECKED, check_claims
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.similarity import map_similarities
from prunegrad_lite.benchmarks.stats import VERDICTS
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.shared import LessonWidget, clip_maps, prediction_labels
from prunegrad_lite.data import denormalize_imagenet, load_photos, preprocess_imagenet
from prunegrad_lite.figures import plot_method_grid

__all__ = [
    "IMAGE_SUFFIXES",
    "Explained",
    "MyPhotos",
    "SecondClassPhotoAnswer",
    "SparsityAnswer",
    "build_scores_widget",
    "claim_counts",
    "explain_images",
    "load_my_photos",
    "plot_scores",
    "second_class_answer",
    "sparsity_answer",
]

#: the files :func:`load_my_photos` reads (case-insensitive)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def plot_scores(result: BenchmarkResult, score: str) -> Figure:
    """One benchmark score for every method: bars of the mean with the std as error bars.

    The title says the benchmark, the score and which direction is better; the spread is the
    sample std over images (pixel perturbation, sanity checks) or training seeds (ROAR).
    """
    rows = [s for s in result.scores if s.name == score]
    if not rows:
        raise ValueError(
            f"{result.benchmark} has no score {score!r}; it has {result.score_names()}"
        )
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(rows) + 1.6), layout="constrained")
    y = np.arange(len(rows))[::-1]
    colors = ["tab:red" if s.method.startswith("prunegrad") else "tab:blue" for s in rows]
    colors = ["0.6" if s.method in ("random", "edge") else c for s, c in zip(rows, colors)]
    ax.barh(y, [s.mean for s in rows], xerr=[s.std for s in rows], color=colors, capsize=3)
    ax.set_yticks(y, [s.method for s in rows], fontsize=8)
    unit = "seeds" if result.benchmark == "roar" else "images"
    ax.set_xlabel(f"{score} (mean ± std over {rows[0].n} {unit})")
    better = rows[0].better or "neither"
    ax.set_title(f"{result.benchmark} on {result.model}: {score} ({better} is better)", fontsize=9)
    return fig


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


# ------------------------------------------------------------------- the claims, counted


def claim_counts(results: Mapping[str, BenchmarkResult]) -> str:
    """How the follow-up paper's claims fare in ``results``, as a Markdown table.

    One row per benchmark: the number of (claim, condition) checks that AGREE, DISAGREE, are
    NOT RESOLVED and NOT CHECKED (:func:`~prunegrad_lite.benchmarks.paper.check_claims`, the
    verdicts :func:`~prunegrad_lite.benchmarks.compare_with_paper` lists one by one), and the
    number of claims behind them.

    Example
    -------
    >>> pgl.course.markdown(claim_counts(course.results))
    """
    rows = check_claims(results)
    kinds = [*VERDICTS, NOT_CHECKED]
    lines = [
        "| benchmark | claims | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for bench in dict.fromkeys(claim.benchmark for claim, _, _ in rows):
        mine = [(c, o) for c, _, o in rows if c.benchmark == bench]
        counts = Counter(o.verdict for _, o in mine)
        claims = len({id(c) for c, _ in mine})
        lines.append(
            f"| {bench} | {claims} | " + " | ".join(str(counts.get(k, 0)) for k in kinds) + " |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ your own images and model


@dataclass
class MyPhotos:
    """Photographs prepared for an ImageNet model, and where they came from."""

    images: Tensor  # (N, 3, size, size) normalised for the model
    display: Tensor  # (N, 3, size, size) in [0, 1], to draw
    names: list[str]  # file names, or the shipped photographs' names
    source: str  # one line: the folder's files, or the fallback and why


def _read_photo(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def load_my_photos(
    folder: str | os.PathLike = "my_images",
    fallback: Sequence[str] = ("coffee",),
    size: int = 224,
    style: str = "efficientnet_lite0",
    limit: int = 8,
) -> MyPhotos:
    """Every photograph in ``folder`` (created if missing), else the shipped ``fallback`` ones.

    Files ending in :data:`IMAGE_SUFFIXES` are read in name order (at most ``limit``), made
    RGB, and preprocessed as :func:`~prunegrad_lite.preprocess_imagenet` does for the style
    (resize, centre crop ``size``, normalise); files that cannot be read are skipped and named
    in ``source``. With no readable photograph, the ``fallback`` photographs of
    :data:`~prunegrad_lite.data.PHOTOS` are used.

    Example
    -------
    >>> photos = load_my_photos("my_images")
    >>> print(photos.source)
    """
    where = Path(folder)
    where.mkdir(parents=True, exist_ok=True)
    files = sorted(f for f in where.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    images, names, skipped = [], [], []
    for f in files[:limit]:
        try:
            images.append(preprocess_imagenet(_read_photo(f), style, size))
            names.append(f.name)
        except (OSError, ValueError):
            skipped.append(f.name)
    note = f" (could not read: {', '.join(skipped)})" if skipped else ""
    if images:
        x = torch.stack(images)
        source = f"{len(names)} photograph(s) from {where}/: {', '.join(names)}{note}"
    else:
        x, names = load_photos(list(fallback), size, style)
        source = (
            f"no photograph in {where}/ yet{note}: the shipped {', '.join(names)} "
            "(put .jpg or .png files there and run this cell again)"
        )
    return MyPhotos(x, denormalize_imagenet(x, style).clamp(0, 1), names, source)


@dataclass
class Explained:
    """Maps of any model on any images, and the figure that shows them."""

    figure: Figure
    maps: dict[str, Tensor]  # method -> (N, C, H, W)
    labels: list[str]  # "<predicted class> (p=0.93)" per image


def explain_images(
    model: nn.Module,
    images: Tensor,
    display: Tensor | np.ndarray,
    class_names: Sequence[str],
    methods: Sequence[str] = ("gradient", "prunegrad"),
    method_options: Mapping[str, dict] | None = None,
) -> Explained:
    """Explain the predicted class of ``images`` on any ``model``, one row per image.

    ``model``: any ``nn.Module`` classifier in eval mode, (N, C, H, W) -> logits (N, K), on
    any device (the images are moved there). ``images``: normalised as the model expects;
    ``display``: the same images in [0, 1] for drawing; ``class_names``: K names. PruneGrad
    uses ``method_options["prunegrad"]["sparsity"]``, else the model's ``default_sparsity``,
    else 0.7 (calibrate one with :func:`~prunegrad_lite.calibrate_sparsity`).

    Example
    -------
    >>> explain_images(my_model, x[:4], to_display_image(x[:4], mean, std), classes).figure
    """
    options = {m: o for m, o in (method_options or {}).items() if m in methods}
    run = method_maps(model, images, list(methods), options)
    labels = prediction_labels(model, images, class_names)
    fig = plot_method_grid(display, clip_maps(run.maps), class_names=labels)
    return Explained(fig, run.maps, labels)


# ------------------------------------------------------------------------ the exercises' answers


@dataclass(frozen=True)
class SecondClassPhotoAnswer:
    """Exercise 1: PruneGrad for the predicted class and for the runner-up, on one image."""

    classes: tuple[str, str]  # the top two classes, with their probabilities
    map_similarity: float  # Spearman |map| between PruneGrad's two maps
    gradient_similarity: float  # the same for the plain gradient's two maps
    kept_both: float  # neurons kept for both classes, of those kept for either (Jaccard)

    def __str__(self) -> str:
        return (
            f"top class {self.classes[0]}, runner-up {self.classes[1]}\n"
            f"Spearman |map| between the two classes' maps: PruneGrad "
            f"{self.map_similarity:.3f}, gradient {self.gradient_similarity:.3f}\n"
            f"neurons PruneGrad keeps for both classes, of those it keeps for either: "
            f"{self.kept_both:.1%}"
        )


def second_class_answer(
    model: nn.Module,
    image: Tensor,
    class_names: Sequence[str],
    sparsity: float | None = None,
) -> SecondClassPhotoAnswer:
    """PruneGrad keeps a different network for each class, so the second class has its own map.

    ``image`` (1, C, H, W) normalised. Explains the top two classes of ``model`` with
    :class:`~prunegrad_lite.PruneGrad` (``sparsity``: None, the model's default) and the
    gradient. Asserts that PruneGrad keeps a different set of neurons for the two classes and
    that its two maps differ.
    """
    x = image[:1]
    with torch.no_grad():
        probs = model(x.to(next(model.parameters()).device)).softmax(-1)[0].cpu()
    top = probs.topk(2).indices.tolist()
    pg = PruneGrad(model, sparsity=sparsity)
    runs = [pg.explain(x, target=k, return_masks=True) for k in top]
    maps = [r.attribution.detach().cpu() for r in runs]
    grads = [method_maps(model, x, ["gradient"], target=torch.tensor([k])).maps["gradient"].cpu()
             for k in top]  # fmt: skip
    kept = [torch.cat([m.flatten() for m in r.masks]) for r in runs]  # every neuron, bool
    both = float((kept[0] & kept[1]).sum()) / max(1.0, float((kept[0] | kept[1]).sum()))
    sim = float(map_similarities(maps[0], maps[1], ("spearman_abs",))["spearman_abs"][0])
    gsim = float(map_similarities(grads[0], grads[1], ("spearman_abs",))["spearman_abs"][0])
    assert both < 1.0, "PruneGrad kept the same neurons for both classes"
    assert not torch.equal(maps[0], maps[1]), "the two classes have the same map"
    names = tuple(f"{class_names[k]} (p={float(probs[k]):.2f})" for k in top)
    return SecondClassPhotoAnswer(names, sim, gsim, both)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SparsityAnswer:
    """Exercise 2: PruneGrad's output change on a model at its own and at another sparsity."""

    calibrated: float  # the sparsity calibrated on this model
    other: float  # another model's calibrated sparsity
    target_change: float  # the change the calibration aims at
    change_calibrated: float  # mean |p - p'| / p at the calibrated sparsity
    change_other: float  # the same at the other sparsity

    def __str__(self) -> str:
        return (
            f"target change {self.target_change:.0%}: at this model's calibrated sparsity "
            f"{self.calibrated:.3f} the pruned network changes p by {self.change_calibrated:.1%}; "
            f"at the other model's {self.other:.3f}, by {self.change_other:.1%}"
        )


def sparsity_answer(
    model: nn.Module, images: Tensor, calibrated: float, other: float, target_change: float = 0.15
) -> SparsityAnswer:
    """A sparsity means a given output change only for the model it was calibrated on.

    Measures PruneGrad's mean relative change of the predicted class's probability on
    ``images`` at ``calibrated`` (from :func:`~prunegrad_lite.calibrate_sparsity` on this model
    and these images) and at ``other`` (another model's). Asserts that the calibrated sparsity
    comes at least as close to ``target_change`` (within 0.02, the calibration's own tolerance
    on a curve that need not be monotone).
    """

    def change(sparsity: float) -> float:
        return float(PruneGrad(model, sparsity=sparsity).explain(images).prob_change.mean())

    at_own, at_other = change(calibrated), change(other)
    assert abs(at_own - target_change) <= abs(at_other - target_change) + 0.02, (
        "another model's sparsity fits this model better than its own"
    )
    return SparsityAnswer(calibrated, other, target_change, at_own, at_other)
