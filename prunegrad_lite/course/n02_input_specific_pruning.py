"""Notebook 02, input-specific pruning: what survives the threshold, what it does to the output.

Used by ``notebooks/02_input_specific_pruning.ipynb`` (and its sweep table by notebook 03).

:func:`pruning_sweep` scores the neurons once and then, for each sparsity, builds the masks
(PruneGrad's step 2) and runs the pruned network: the kept fraction per layer, the target
probability before and after, and whether the prediction survives. Run it with
``scoring="random"`` for the control that prunes as many neurons chosen at random.
:func:`plot_kept_per_site` and :func:`plot_pruning_sweep` draw sweeps, and
:func:`build_pruning_widget` moves the sparsity.

Example
-------
>>> taylor = pruning_sweep(model, x, [0.5, 0.9, 0.99])
>>> random = pruning_sweep(model, x, [0.5, 0.9, 0.99], scoring="random")
>>> taylor.mean_change, random.mean_change        # (S,) each: Taylor pruning changes far less
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite
from prunegrad_lite.attribution.base import TargetLike, check_inputs, check_model
from prunegrad_lite.attribution.base import preserve_model_state
from prunegrad_lite.attribution.relu6 import check_clip_treatment, clip_treatment_options
from prunegrad_lite.attribution.pruning import (
    apply_masks,
    check_sparsity,
    neuron_scores,
    masks_from_scores,
)
from prunegrad_lite.benchmarks.pixel_perturbation import probability_change
from prunegrad_lite.course.shared import LessonWidget, sparsity_slider

__all__ = [
    "PruningAnswer",
    "answer_kept_below_zero_fraction",
    "answer_random_control",
    "PruningSweep",
    "build_pruning_widget",
    "format_pruning_sweeps",
    "plot_kept_per_site",
    "plot_pruning_sweep",
    "pruning_sweep",
]


@dataclass
class PruningSweep:
    """What pruning keeps and does to the output at each sparsity; S levels, N samples, L sites."""

    sparsities: np.ndarray  # (S,) fractions of neurons pruned
    scoring: str  # "taylor" (PruneGrad), "random" (control) or "integrated_gradients"
    threshold: str  # "global" or "layer"
    clip_treatment: str  # what was done about ReLU6's clip (PruneGrad's option; "spec" for random)
    sites: list[ActivationSite]
    kept_fraction: np.ndarray  # (S, N) fraction of all neurons kept: the effective 1 - sparsity
    kept_per_site: np.ndarray  # (S, N, L) fraction of each site's neurons kept
    prob: np.ndarray  # (N,) target probability of the unpruned network
    pruned_prob: np.ndarray  # (S, N) target probability of the pruned network
    same_prediction: np.ndarray  # (S, N) bool: does the pruned network still predict the target?

    @property
    def change(self) -> np.ndarray:
        """Relative change of the target probability, ``|p - p'| / p``, (S, N)."""
        return probability_change(
            torch.as_tensor(self.prob), torch.as_tensor(self.pruned_prob)
        ).numpy()

    @property
    def mean_change(self) -> np.ndarray:
        """:attr:`change` averaged over the samples, (S,): what ``calibrate_sparsity`` targets."""
        return self.change.mean(axis=1)


def pruning_sweep(
    model: nn.Module,
    inputs: Tensor,
    sparsities: Sequence[float],
    target: TargetLike = None,
    *,
    scoring: str = "taylor",
    threshold: str = "global",
    seed: int = 0,
    clip_treatment: str = "auto",
) -> PruningSweep:
    """Prune at each sparsity and record kept fractions and target probabilities.

    Scores are computed once (``scoring`` as :func:`~prunegrad_lite.neuron_scores`; ``seed``
    seeds the random scoring), then one masked forward pass per sparsity. ``target=None``
    explains the predicted class. ``clip_treatment`` as :class:`~prunegrad_lite.PruneGrad`
    (ReLU6 networks only; ``"spec"`` is the method as published). The model is left unchanged.

    Example
    -------
    >>> sweep = pruning_sweep(model, x, [0.0, 0.7, 0.9])
    >>> sweep.kept_fraction.mean(1)       # about 1.0, 0.3, 0.1 (less when scores tie)
    """
    levels = [check_sparsity(s) for s in sparsities]
    check_model(model)
    x = check_inputs(model, inputs)
    with preserve_model_state(model):
        gen = torch.Generator().manual_seed(seed)
        treatment = check_clip_treatment(clip_treatment, scoring)
        rule, st = clip_treatment_options(treatment, scoring)
        scores = neuron_scores(model, x, target, scoring, generator=gen, straight_through=st)
        t = scores.target.view(-1, 1)  # (N, 1)
        prob = scores.logits.softmax(-1).gather(1, t).squeeze(1)  # (N,)
        kept, kept_sites, pruned, same = [], [], [], []
        for s in levels:  # one masked forward pass per sparsity, all samples at once
            masks = masks_from_scores(scores, s, threshold, rule)
            with torch.no_grad(), apply_masks(model, masks):
                logits = model(x)  # (N, K)
            kept.append(masks.kept_fraction.cpu())
            kept_sites.append(masks.kept_per_site.cpu())
            pruned.append(logits.softmax(-1).gather(1, t).squeeze(1).cpu())
            same.append((logits.argmax(1) == scores.target).cpu())
    return PruningSweep(
        sparsities=np.asarray(levels, dtype=np.float64),
        scoring=scoring,
        threshold=threshold,
        clip_treatment=treatment,
        sites=scores.sites,
        kept_fraction=torch.stack(kept).numpy(),
        kept_per_site=torch.stack(kept_sites).numpy(),
        prob=prob.cpu().double().numpy(),
        pruned_prob=torch.stack(pruned).double().numpy(),
        same_prediction=torch.stack(same).numpy(),
    )


def format_pruning_sweeps(sweeps: Sequence[PruningSweep]) -> str:
    """A plain-text table: per sparsity, each sweep's kept fraction, mean change, same prediction.

    ``kept``: fraction of all neurons kept; ``|dp|/p``: mean relative change of the target
    probability; ``same``: fraction of images whose pruned network predicts the same class.

    Example
    -------
    >>> print(format_pruning_sweeps([taylor, random]))
    """

    def label(s: PruningSweep) -> str:  # the clip treatment only when not the default
        default = check_clip_treatment("auto", s.scoring)
        extra = "" if s.clip_treatment == default else f", {s.clip_treatment}"
        return f"{s.scoring}, {s.threshold}{extra}"[:25]

    head = f"{'':>8}" + "".join(f" | {label(s):^25}" for s in sweeps)
    sub = f"{'sparsity':>8}" + f" | {'kept':>8} {'|dp|/p':>9} {'same':>6}" * len(sweeps)
    rows = [head, sub]
    for i, s in enumerate(sweeps[0].sparsities):
        cells = [
            f" | {w.kept_fraction[i].mean():>8.1%} {w.mean_change[i]:>9.3f} "
            f"{w.same_prediction[i].mean():>6.0%}"
            for w in sweeps
        ]
        rows.append(f"{s:>8.2f}" + "".join(cells))
    return "\n".join(rows)


# -------------------------------------------------- figures: kept per site, change per sparsity


def _sweep_label(sweep: PruningSweep) -> str:
    return {
        "taylor": "Taylor scores (PruneGrad)",
        "random": "random scores (control)",
        "integrated_gradients": "IG scores (PruneInt)",
    }.get(sweep.scoring, sweep.scoring) + (
        ", per-layer threshold" if sweep.threshold == "layer" else ""
    )


def _sweep_color(sweep: PruningSweep) -> str:
    """One colour per kind of pruning, the same in every figure: blue is PruneGrad's."""
    colors = {"taylor": "tab:blue", "random": "tab:gray", "integrated_gradients": "tab:orange"}
    if sweep.threshold == "layer":
        return {"taylor": "tab:green", "random": "silver"}.get(sweep.scoring, "tab:purple")
    return colors.get(sweep.scoring, "tab:purple")


def plot_kept_per_site(
    sweeps: PruningSweep | Sequence[PruningSweep], level: int = 0, sample: int | None = None
) -> Figure:
    """Fraction of each site's neurons kept at one sparsity, for one or more pruning sweeps.

    ``sweeps`` are :class:`~prunegrad_lite.course.PruningSweep` of the same model and inputs
    (e.g. Taylor and random scores, or global and per-layer thresholds), labelled by their
    scoring and threshold. ``level`` indexes their sparsities; ``sample=None`` averages over
    the samples. Each label gives the target probability before and after pruning.
    """
    sweeps = [sweeps] if isinstance(sweeps, PruningSweep) else list(sweeps)
    pick = slice(None) if sample is None else [sample]
    first = sweeps[0]
    s = first.sparsities[level]
    names = [f"{site.index}: {site.name}" for site in first.sites]
    y = np.arange(len(names))[::-1]
    fig, ax = plt.subplots(figsize=(7.0, 0.42 * len(names) + 1.9), layout="constrained")
    height = 0.8 / len(sweeps)
    for i, sweep in enumerate(sweeps):
        ax.barh(
            y + 0.4 - height * (i + 0.5),
            sweep.kept_per_site[level][pick].mean(0),  # (L,)
            height=height,
            color=_sweep_color(sweep),
            label=f"{_sweep_label(sweep)}: p {sweep.prob[pick].mean():.3f} -> "
            f"{sweep.pruned_prob[level][pick].mean():.3f}",
        )
    ax.axvline(1 - s, color="k", ls="--", lw=1, label=f"1 - sparsity = {1 - s:.2f}")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of the site's neurons kept")
    ax.legend(fontsize=7, loc="lower right")
    who = "mean over images" if sample is None else f"image {sample}"
    ax.set_title(
        f"What survives pruning at sparsity {s:.2f} ({who});\n"
        "p = target probability, unpruned -> pruned",
        fontsize=9,
    )
    return fig


def plot_pruning_sweep(
    sweeps: PruningSweep | Sequence[PruningSweep], calibration_change: float | None = 0.15
) -> Figure:
    """Output change against sparsity: relative probability change and surviving predictions.

    Left: mean ``|p - p'| / p`` of the target probability for each sweep (e.g. Taylor pruning
    and the random control), with the calibration target (the authors' 15%). Right: the
    fraction of images whose pruned network still predicts the same class.
    """
    sweeps = [sweeps] if isinstance(sweeps, PruningSweep) else list(sweeps)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(8.8, 3.5), layout="constrained")
    for sweep in sweeps:
        label, color = _sweep_label(sweep), _sweep_color(sweep)
        ax.plot(sweep.sparsities, sweep.mean_change, "o-", color=color, label=label)
        bx.plot(sweep.sparsities, sweep.same_prediction.mean(1), "o-", color=color, label=label)
    if calibration_change is not None:
        ax.axhline(
            calibration_change,
            color="k",
            ls="--",
            lw=1,
            label=f"calibration target {calibration_change:.0%}",
        )
    ax.set_xlabel("sparsity (fraction of neurons pruned)")
    ax.set_ylabel("mean |p - p'| / p of the target class")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("How much pruning changes the output", fontsize=9)
    bx.set_xlabel("sparsity (fraction of neurons pruned)")
    bx.set_ylabel("fraction of images, same prediction")
    bx.set_ylim(0, 1.05)
    bx.legend(fontsize=8)
    bx.set_title("Does the pruned network still predict the class?", fontsize=9)
    n = sweeps[0].prob.shape[0]
    fig.suptitle(
        f"Input-specific pruning against sparsity ({n} images)",
        fontsize=10,
    )
    return fig


# -------------------------------------------------- the widget: what each layer keeps at a sparsity


def build_pruning_widget(
    model: nn.Module, images: Tensor, sparsity: float = 0.9, threshold: str = "global"
) -> LessonWidget:
    """Notebook 02: a sparsity slider showing what each layer keeps and the target probability.

    The result is ``(taylor, random)``: two one-level
    :class:`~prunegrad_lite.course.PruningSweep` over all ``images`` (Taylor scores and the
    random-pruning control); the figure shows their mean kept fraction per site.
    """
    control = sparsity_slider(sparsity)

    def compute(sparsity: float) -> tuple:
        taylor = pruning_sweep(model, images, [sparsity], threshold=threshold)
        random = pruning_sweep(model, images, [sparsity], threshold=threshold, scoring="random")
        return taylor, random

    def draw(result: tuple, sparsity: float) -> Figure:
        return plot_kept_per_site(result, level=0)

    return LessonWidget(
        "Input-specific pruning: move the sparsity", {"sparsity": control}, compute, draw
    )


# ---------------------------------------------------------------- exercises: the answers, checked


@dataclass
class PruningAnswer:
    """What an answer of notebook 02 measured, per image, and the checked statement."""

    rows: dict[str, np.ndarray]  # quantity -> (N,)
    claim: str

    def __str__(self) -> str:
        lines = [f"{k}: {np.round(v, 3).tolist()}" for k, v in self.rows.items()]
        return "\n".join([*lines, f"-> {self.claim}"])


def answer_kept_below_zero_fraction(
    model: nn.Module, inputs: Tensor, sparsity: float = 0.3
) -> PruningAnswer:
    """Check: while ``sparsity`` is below an image's fraction of zero scores, its threshold is 0
    and exactly the zero-score neurons go: kept fraction = fraction of non-zero scores, less than
    ``1 - sparsity``. Asserted for every image whose zero fraction exceeds ``sparsity``."""
    x = check_inputs(model, inputs)
    scores = neuron_scores(model, x)
    nonzero = (scores.flat() > 0).double().mean(1).cpu().numpy()
    kept = masks_from_scores(scores, sparsity).kept_fraction.cpu().numpy()
    below = 1 - nonzero > sparsity
    assert below.any(), f"no image has more than {sparsity:.0%} zero scores: try a lower sparsity"
    np.testing.assert_allclose(kept[below], nonzero[below], rtol=0, atol=1e-12)
    assert (kept[below] < 1 - sparsity).all()
    return PruningAnswer(
        {f"kept at sparsity {sparsity}": kept, "fraction of non-zero scores": nonzero},
        f"equal wherever the zero fraction exceeds {sparsity} ({int(below.sum())} of "
        f"{len(below)} images), and below 1 - sparsity = {1 - sparsity:.2f}",
    )


def answer_random_control(model: nn.Module, inputs: Tensor, sparsity: float = 0.5) -> PruningAnswer:
    """Check: pruning the lowest Taylor scores changes the class probability less, on average,
    than pruning as many neurons at random (the control of section 3)."""
    taylor = pruning_sweep(model, inputs, [sparsity])
    random = pruning_sweep(model, inputs, [sparsity], scoring="random")
    t, r = taylor.change[0], random.change[0]
    assert t.mean() < r.mean(), "Taylor pruning should change p less than random pruning"
    return PruningAnswer(
        {f"|p - p'| / p, Taylor, sparsity {sparsity}": t, "the same, random scores": r},
        f"mean {t.mean():.3f} (Taylor) < {r.mean():.3f} (random)",
    )
