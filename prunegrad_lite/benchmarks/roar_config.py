"""ROAR's protocol settings: the configuration, the CPU recipe and the recipe's hash.

Used by :mod:`.roar` (the benchmark), :mod:`.roar_inputs` and :mod:`.roar_results`; the protocol
itself is described at the top of :mod:`.roar` and in ``docs/method.md``.

Example
-------
>>> RoarConfig(fractions=(0.1, 0.5), seeds=(0, 1), mask_only=True).num_cells(["gradient", "random"])
20
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prunegrad_lite.benchmarks.removal import check_fractions
from prunegrad_lite.training import TrainConfig

__all__ = [
    "BASELINE",
    "DEFAULT_ROAR_FRACTIONS",
    "NETWORKS",
    "REPLACEMENTS",
    "ROAR_RECIPE",
    "RecipeNotConverged",
    "RoarConfig",
    "check_convergence",
    "recipe_hash",
]

DEFAULT_ROAR_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
BASELINE = "none"  # the method name of the fraction-0 reference cells


#: the recipe every ROAR cell is retrained with on CPU (see docs/deviations.md, ROAR): SGD with
#: Nesterov momentum, OneCycle (peak 0.1), weight decay 5e-4, batch 64, no augmentation,
#: RoarNet width 16, 15 epochs, the best epoch by validation accuracy. Chosen on unmodified
#: images only (``perf/roar_recipe.py``, 9k fit / 1k validation / 2k test, test accuracy):
#: batch 128 with flips, 10 epochs 0.8495 / 0.8525 / 0.8500 vs 30 epochs 0.879 / 0.880 (gap
#: ~3 points); batch 64 without flips, 10 epochs 0.8670 (seed 0) / 0.8755 (seed 1) vs 30
#: epochs 0.8845 (seed 0: gap 1.75 points > 1.5), so 15 epochs: 0.8900 / 0.8680 / 0.8745
#: (seeds 0-2, mean 0.8775) against 45 epochs 0.8840 / 0.8910 / 0.8705 (mean 0.8818), a gap of
#: 0.43 points (the reference cells of the full run, 1 thread each). The 3x check runs first in
#: every ``reproduce`` (``reference_accuracy_3x_longer``). Width 24 / 32 cost 2.2x / 3.2x the
#: time per epoch of width 16 (1 thread): too slow for the grid.
ROAR_RECIPE = TrainConfig(epochs=15, batch_size=64, lr=0.1, hflip=False, width=16)
NETWORKS = ("roarnet", "resnet8")  # what ROAR retrains: RoarNet (CPU) or FashionResNet (paper)
REPLACEMENTS = ("mean", "noisy_linear")  # what removed pixels become


@dataclass(frozen=True)
class RoarConfig:
    """The ROAR protocol. ``recipe`` is the training recipe of every retrained cell.

    ``network`` is what is retrained: ``"roarnet"`` (:class:`~.roar_models.RoarNet`, the CPU
    default) or ``"resnet8"`` (FashionResNet at ``recipe.width``, the authors' ResNet-8; what
    Hooker et al. and the paper retrain). ``validation`` is the fraction of the training images
    held out (seeded, the same for every cell) to keep each cell's best-validation checkpoint;
    0 keeps the last epoch. ``longer_reference`` also retrains the unmodified images with
    ``longer_reference`` times the epochs (0: not): the convergence check of the recipe.
    ``other_class`` lists methods whose map **for a random class the model did not predict**
    also ranks pixels (a ranking named ``"{method}@other_class"``): a class-agnostic control
    that keeps the method's silhouette but not its label. ``replacement``: ``"mean"`` (the
    per-channel mean of the training images, Hooker et al.) or ``"noisy_linear"`` (ROAD's
    noisy linear imputation, Rong et al. 2022).
    """

    fractions: tuple[float, ...] = DEFAULT_ROAR_FRACTIONS  # top fractions removed, in (0, 1)
    seeds: tuple[int, ...] = (0, 1, 2)  # one retraining per seed and cell
    recipe: TrainConfig = field(default_factory=lambda: ROAR_RECIPE)
    network: str = "roarnet"
    validation: float = 0.1  # fraction of the training images held out for checkpointing
    baseline: bool = True  # also retrain on unmodified images (fraction 0), per seed
    longer_reference: int = 3  # also retrain unmodified images this many times longer (0: no)
    # stop before the grid when the longer reference beats the reference by more than this
    # (mean over seeds; None: never stop, only report)
    convergence_tolerance: float | None = None
    mask_only: bool = False  # also train on the removal mask alone: how much the mask leaks
    other_class: tuple[str, ...] = ()  # methods also run with the map of a non-predicted class
    replacement: str = "mean"
    batch_size: int = 128  # images per attribution call

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", check_fractions(self.fractions))
        seeds = tuple(dict.fromkeys(int(s) for s in self.seeds))
        if not seeds:
            raise ValueError("give at least one seed")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "other_class", tuple(dict.fromkeys(self.other_class)))
        if not isinstance(self.recipe, TrainConfig):
            raise ValueError(f"recipe must be a TrainConfig, got {type(self.recipe).__name__}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        if self.replacement not in REPLACEMENTS:
            raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {self.replacement!r}")
        if not 0.0 <= self.validation < 0.5:
            raise ValueError(f"validation must be in [0, 0.5), got {self.validation}")
        if self.longer_reference < 0 or self.longer_reference == 1:
            raise ValueError("longer_reference must be 0 (off) or >= 2 (times the epochs)")
        if self.convergence_tolerance is not None and not (self.baseline and self.longer_reference):
            raise ValueError("convergence_tolerance needs baseline=True and longer_reference >= 2")

    def num_cells(self, rankings: Sequence[str]) -> int:
        """How many networks a run with these ranking names (controls included, e.g.
        ``"prunegrad@other_class"``) trains; a longer reference counts ``longer_reference``
        cells. The random ranking has no mask-only cells (its mask is independent of the
        image: chance by construction)."""
        per_seed = len(rankings) * len(self.fractions)
        if self.mask_only:
            per_seed += sum(m != "random" for m in rankings) * len(self.fractions)
        per_seed += int(self.baseline) + self.longer_reference
        return per_seed * len(self.seeds)


def recipe_hash(recipe: TrainConfig, config: RoarConfig | None = None) -> str:
    """12 hex digits identifying a training recipe, its seed excluded (seeds key cells apart),
    and (with ``config``) what else changes a retrained cell: the network, the validation
    split and the replacement."""
    fields: dict[str, Any] = {k: v for k, v in dataclasses.asdict(recipe).items() if k != "seed"}
    if config is not None:
        fields |= {
            "network": config.network,
            "validation": config.validation,
            "replacement": config.replacement,
        }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


class RecipeNotConverged(RuntimeError):
    """The ROAR recipe's reference is further than the tolerance below its longer run."""


def check_convergence(
    records: Mapping[tuple[str, float, int, str], dict[str, Any]], config: RoarConfig
) -> None:
    """Raise :class:`RecipeNotConverged` when the longer reference beats the reference by more
    than ``config.convergence_tolerance`` (means over seeds); ``records`` keyed by
    ``(method, fraction, seed, variant)``."""
    base = [records[(BASELINE, 0.0, s, "roar")]["test_accuracy"] for s in config.seeds]
    longer = [records[(BASELINE, 0.0, s, "longer")]["test_accuracy"] for s in config.seeds]
    gap = sum(longer) / len(longer) - sum(base) / len(base)
    if gap > config.convergence_tolerance:
        raise RecipeNotConverged(
            f"the ROAR recipe does not converge: {config.recipe.epochs} epochs reach "
            f"{sum(base) / len(base):.4f} on unmodified images, {config.longer_reference}x "
            f"longer {sum(longer) / len(longer):.4f} (gap {100 * gap:.2f} points > "
            f"{100 * config.convergence_tolerance:.2f}). Train longer (recipe.epochs) or "
            "change the recipe; the reference cells are cached, the grid was not started."
        )
