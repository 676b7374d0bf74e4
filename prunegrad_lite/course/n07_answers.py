"""Notebook 07's exercises: each answer computed and asserted (CI runs the notebook).

Used by ``notebooks/07_roar.ipynb`` (its solution cells); the lesson's own computations are in
:mod:`.n07_roar`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.presets import roar_config
from prunegrad_lite.benchmarks.removal import fraction_label
from prunegrad_lite.benchmarks.reproduce import Preset
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.roar import removal_mask_images
from prunegrad_lite.course.n04_comparing_methods import method_maps
from prunegrad_lite.course.n06_pixel_perturbation import (
    pixel_ranks,
)
from prunegrad_lite.course.n07_roar import _acc

__all__ = [
    "MaskLeakAnswer",
    "RetrainingsAnswer",
    "mask_leak_answer",
    "retrainings_answer",
]


@dataclass(frozen=True)
class MaskLeakAnswer:
    """Exercise 1: how well the removal mask alone predicts the class, without retraining."""

    fraction: float
    accuracy: dict[str, float]  # method -> nearest-class-mean accuracy on the test masks
    chance: float  # 1 / number of classes
    train: int  # training masks (class means)
    test: int  # test masks classified
    run_mask_only: dict[str, float]  # method -> the run's mask-only accuracy at this fraction

    def __str__(self) -> str:
        rows = [
            f"  {m:<12} {a:6.1%}" + (
                f"   (the run's trained mask-only network: {self.run_mask_only[m]:.1%})"
                if m in self.run_mask_only else ""
            )
            for m, a in self.accuracy.items()
        ]  # fmt: skip
        return (
            f"Nearest class mean on the removal masks at {self.fraction:.0%} removed "
            f"({self.train} training masks, {self.test} test masks; chance {self.chance:.0%}):\n"
            + "\n".join(rows)
        )


def mask_leak_answer(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    methods: Sequence[str] = ("gradient", "prunegrad", "random"),
    fraction: float = 0.5,
    roar: BenchmarkResult | None = None,
    seed: int = 0,
) -> MaskLeakAnswer:
    """The mask of a map that follows the object tells the class; a random mask does not.

    The removal masks of the ``train`` and ``test`` images (``(images, labels)``, normalised)
    at ``fraction`` are classified by the nearest class mean of the training masks: the
    simplest classifier, no retraining. Asserts that the masks of every ranking that follows
    the garment are classified well above chance and above the random ranking's, which stay
    near chance. ``roar`` (optional): the run whose mask-only accuracies are shown beside.
    """
    (x_tr, y_tr), (x_te, y_te) = train, test
    images = torch.cat([x_tr, x_te])
    maps = method_maps(model, images, list(methods)).maps
    size = tuple(images.shape[-2:])
    k = int(max(int(y_tr.max()), int(y_te.max())) + 1)
    y_tr, y_te = y_tr.cpu(), y_te.cpu()
    accuracy = {}
    for m, rank in pixel_ranks(maps, seed).items():
        masks = removal_mask_images(rank, fraction, 1, size).flatten(1)  # (N, H*W) 0/1
        m_tr, m_te = masks[: len(x_tr)], masks[len(x_tr) :]
        centres = torch.stack([
            m_tr[y_tr == c].mean(0) if (y_tr == c).any() else torch.full_like(m_tr[0], 1e9)
            for c in range(k)
        ])  # fmt: skip
        predicted = torch.cdist(m_te, centres).argmin(1)
        accuracy[m] = float((predicted == y_te).double().mean())
    chance = 1.0 / k
    run = {}
    if roar is not None:
        for m in methods:
            a = _acc(roar, m, f"mask_only@{fraction_label(fraction)}")
            if a is not None:
                run[m] = a
    for m, a in accuracy.items():  # every ranking that follows the image
        if m != "random":
            assert a > chance + 0.1, f"the masks of {m} do not tell the class"
    if "random" in accuracy:
        assert accuracy["random"] < min(a for m, a in accuracy.items() if m != "random"), (
            "random masks tell the class as well"
        )
    return MaskLeakAnswer(fraction, accuracy, chance, len(x_tr), len(x_te), run)


@dataclass(frozen=True)
class RetrainingsAnswer:
    """Exercise 2: the networks a preset's ROAR trains, counted term by term."""

    preset: str
    terms: dict[str, int]  # what is counted -> how many networks
    total: int

    def __str__(self) -> str:
        rows = [f"  {what:<58} {n:>4}" for what, n in self.terms.items()]
        return (
            f"ROAR under preset {self.preset!r}:\n"
            + "\n".join(rows)
            + (f"\n  {'total':<58} {self.total:>4}")
        )


def retrainings_answer(preset: Preset) -> RetrainingsAnswer:
    """How many networks ROAR trains under ``preset``, counted term by term.

    Asserts that the count equals what the benchmark itself plans
    (:meth:`~prunegrad_lite.RoarConfig.num_cells`).
    """
    config = roar_config(preset, preset.roar_methods)
    rankings = [*preset.roar_methods, *(f"{m}@other_class" for m in config.other_class)]
    f, s = len(config.fractions), len(config.seeds)
    terms = {f"ROAR: {len(rankings)} rankings x {f} fractions x {s} seeds": len(rankings) * f * s}
    if config.mask_only:
        masked = [r for r in rankings if r != "random"]
        terms[f"mask-only: {len(masked)} rankings (not random) x {f} x {s}"] = len(masked) * f * s
    if config.baseline:
        terms[f"reference (nothing removed) x {s} seeds"] = s
    if config.longer_reference:
        terms[f"longer reference ({config.longer_reference}x epochs, counted so) x {s} seeds"] = (
            config.longer_reference * s
        )
    total = sum(terms.values())
    assert total == config.num_cells(rankings), "the count misses a kind of network"
    return RetrainingsAnswer(preset.name, terms, total)
