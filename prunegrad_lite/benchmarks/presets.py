"""What a ``reproduce`` run does: the models and benchmarks it knows, and its presets.

A :class:`Preset` fixes how much of each benchmark a run does (image counts, seeds, epochs,
methods): ``"full"`` (the default), ``"quick"`` (``--quick``: minutes on a CPU), ``"smoke"``
(selected by ``PRUNEGRAD_LITE_SMOKE=1`` instead of either: the quick preset shrunk to a few
images and one short epoch, the same code paths, for CI) and ``"paper"`` (the authors' ROAR grid
on CIFAR-10, for a GPU). :func:`roar_config` turns a preset into ROAR's configuration and
:func:`roar_cost` says what it will cost before it starts.

Example
-------
>>> select_preset(quick=True).pixel_images
200
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from prunegrad_lite.benchmarks.roar import RoarConfig
from prunegrad_lite.runtime import SMOKE_ENV_VAR, smoke_mode
from prunegrad_lite.training import TrainConfig

__all__ = [
    "BENCHMARKS",
    "DEFAULT_METHODS",
    "DEFAULT_MODELS",
    "PRESETS",
    "REPRODUCE_MODELS",
    "SMOKE_ENV",
    "Preset",
    "roar_config",
    "roar_cost",
    "select_preset",
]

SMOKE_ENV = SMOKE_ENV_VAR  # "PRUNEGRAD_LITE_SMOKE", shared with the notebooks
BENCHMARKS = ("sanity", "pixel", "roar")
REPRODUCE_MODELS = ("fashion_mnist", "efficientnet_lite0", "resnet50", "vgg16", "cifar10_resnet8")
#: what ``models="all"`` runs: the models whose weights are offline
DEFAULT_MODELS = ("fashion_mnist", "efficientnet_lite0")
#: the paper's comparison: the baselines of spec section 2, PruneGrad and the two controls
DEFAULT_METHODS = (
    "gradient",
    "grad_x_input",
    "integrated_gradients",
    "smoothgrad",
    "guided_backprop",
    "gradcam",
    "fullgrad",
    "prunegrad",
    "random",
    "edge",
)


@dataclass(frozen=True)
class Preset:
    """How much of each benchmark a ``reproduce`` run does (image counts, seeds, epochs)."""

    name: str
    pixel_images: int  # Fashion-MNIST test images for pixel perturbation
    sanity_images: int  # Fashion-MNIST test images for the sanity checks
    sanity_depth: int | None  # Fashion stages: None, one per conv/linear layer; 1, per block
    roar_train: int | None  # ROAR training images, class-balanced (None: all 10,000 shipped)
    roar_test: int | None  # ROAR test images, class-balanced (None: all 2,000 shipped)
    roar_fractions: tuple[float, ...]
    roar_seeds: tuple[int, ...]
    roar_epochs: int  # epochs of the ROAR recipe
    roar_batch_size: int  # batch size of the ROAR recipe (TrainConfig otherwise at its defaults)
    roar_methods: tuple[str, ...]  # ROAR's methods (retraining is the cost)
    photos: int | None  # ImageNet photographs (None: all 7)
    imagenet_sanity_methods: tuple[str, ...] | None  # None: the run's methods
    imagenet_sanity_depth: int  # EfficientNet stages: 2 groups by block (_blocks.k)
    calibration_images: int  # images PruneGrad's sparsity is calibrated on
    methods: tuple[str, ...] = DEFAULT_METHODS  # default methods of pixel and sanity
    roar_mask_only: bool = True  # ROAR's mask-only control (does the removal mask leak?)
    roar_other_class: tuple[str, ...] = ()  # methods also ranked by a non-predicted class's map
    roar_network: str = "roarnet"  # what ROAR retrains: "roarnet" (CPU) or "resnet8" (paper)
    roar_width: int = 16  # width of the retrained network
    roar_lr: float = 0.1  # (peak) learning rate of the ROAR recipe
    roar_hflip: bool = True  # random horizontal flips in the ROAR recipe
    roar_optimizer: str = "sgd"  # the ROAR recipe's optimizer (TrainConfig.optimizer)
    roar_schedule: str = "onecycle"  # the ROAR recipe's schedule (TrainConfig.schedule)
    roar_validation: float = 0.1  # training images held out for the best checkpoint
    roar_longer: int = 3  # the convergence check: fraction 0 retrained this many times longer
    roar_tolerance: float | None = None  # stop before the grid if the longer run gains more
    roar_replacement: str = "mean"  # "mean" (Hooker et al.) or "noisy_linear" (ROAD)
    explained_epochs: int = 30  # cifar10_resnet8: epochs of the explained ResNet-8 (cached)
    # pixel perturbation's replacements, the main one first (see PixelPerturbationConfig)
    pixel_replacements: tuple[str, ...] = ("mean", "blur", "noisy_linear")
    sanity_draws: int = 3  # weight draws per randomisation (sanity checks)
    # EfficientNet-Lite0's sanity checks: one draw (19 stages by block x 2 variants x 2 inits on
    # the photographs is ~19 s per step on one core: 3 draws alone would take over an hour)
    imagenet_sanity_draws: int = 1
    sanity_inits: tuple[str, ...] = ("authors", "reset")  # re-initialisations (sanity checks)
    sanity_measures: tuple[str, ...] = ("spearman_abs", "spearman", "ssim", "hog")
    sanity_target: str = "original"  # class explained after randomisation (as Quantus)


# ROAR in "full": the 15-epoch recipe that converges (batch 64, no flips; the measurements are in
# roar.ROAR_RECIPE's comment) costs 1.5x the 10-epoch one, so the grid is 10 and 50% and no
# Integrated Gradients: 78 retrainings, about 48 min on 2 idle cores (docs/deviations.md)
_FULL = Preset(
    name="full",
    pixel_images=500,
    # 64 images x 3 weight draws x 2 inits (the draws' spread dominates the images'): the whole
    # full run has to fit about 90 min on 2 cores (ROAR is about 50 of them; docs/deviations.md)
    sanity_images=64,
    sanity_depth=None,
    roar_train=None,
    roar_test=None,
    roar_fractions=(0.1, 0.5),
    roar_seeds=(0, 1, 2),
    roar_epochs=15,
    roar_batch_size=64,
    roar_methods=("gradient", "gradcam", "prunegrad", "random", "edge"),
    photos=None,
    imagenet_sanity_methods=(
        "gradient",
        "guided_backprop",
        "gradcam",
        "prunegrad",
        "random",
        "edge",
    ),
    imagenet_sanity_depth=2,
    calibration_images=500,
    roar_other_class=("prunegrad",),
    roar_hflip=False,
    roar_tolerance=0.015,
)
#: fewer images, one ROAR seed and two fractions, shorter training: minutes on a CPU
_QUICK = dataclasses.replace(
    _FULL,
    name="quick",
    pixel_images=200,
    sanity_images=32,
    sanity_depth=1,
    roar_train=2000,
    roar_test=500,
    roar_fractions=(0.1, 0.5),
    roar_seeds=(0,),
    roar_epochs=5,
    roar_batch_size=128,
    roar_hflip=True,
    roar_methods=("gradient", "prunegrad", "random", "edge"),
    photos=3,
    imagenet_sanity_methods=("gradient", "guided_backprop", "prunegrad", "edge"),
    imagenet_sanity_depth=1,
    calibration_images=200,
    roar_longer=0,
    roar_tolerance=None,
    pixel_replacements=("mean", "noisy_linear"),
    sanity_draws=2,
)
#: the quick preset shrunk to a few images and one short epoch: the same code paths, for CI
_SMOKE = dataclasses.replace(
    _QUICK,
    name="smoke",
    pixel_images=16,
    sanity_images=4,
    roar_train=64,
    roar_test=32,
    roar_epochs=1,
    roar_batch_size=64,
    photos=1,
    imagenet_sanity_methods=("gradient", "prunegrad", "edge"),
    calibration_images=16,
    methods=("gradient", "guided_backprop", "gradcam", "prunegrad", "random", "edge"),
    roar_longer=2,
)
# For a GPU and the user's CIFAR-10 (``--model cifar10_resnet8 --preset paper``): the authors'
# ROAR grid and recipe (spec section 3, from their CVPR 2021 follow-up: CIFAR-10, ResNet-8, Adam
# 1e-3, 50 epochs), 10..90% removed, ResNet-8 explained and retrained, 3 seeds instead of their
# one retraining per cell, the best-validation checkpoint of each.
_PAPER = dataclasses.replace(
    _FULL,
    name="paper",
    pixel_images=1000,
    roar_fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
    roar_epochs=50,
    roar_batch_size=128,
    roar_hflip=True,
    roar_methods=(
        "gradient",
        "integrated_gradients",
        "guided_backprop",
        "gradcam",
        "prunegrad",
        "random",
        "edge",
    ),
    imagenet_sanity_methods=None,
    roar_network="resnet8",
    roar_lr=1e-3,
    roar_optimizer="adam",
    roar_schedule="constant",
    roar_longer=0,
    roar_tolerance=None,
    explained_epochs=30,
    imagenet_sanity_draws=3,
)
PRESETS: dict[str, Preset] = {p.name: p for p in (_FULL, _QUICK, _SMOKE, _PAPER)}


def select_preset(quick: bool = False, name: str | None = None) -> Preset:
    """``"smoke"`` in smoke mode, else ``name`` when given, else ``"quick"`` when ``quick``,
    else ``"full"``."""
    if smoke_mode():
        return PRESETS["smoke"]
    if name is not None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return PRESETS[name]
    return PRESETS["quick" if quick else "full"]


def roar_config(preset: Preset, methods: Sequence[str]) -> RoarConfig:
    """The :class:`RoarConfig` of a preset (``other_class`` kept to the methods run)."""
    return RoarConfig(
        fractions=preset.roar_fractions,
        seeds=preset.roar_seeds,
        recipe=TrainConfig(
            epochs=preset.roar_epochs,
            batch_size=preset.roar_batch_size,
            lr=preset.roar_lr,
            hflip=preset.roar_hflip,
            optimizer=preset.roar_optimizer,
            schedule=preset.roar_schedule,
            width=preset.roar_width,
        ),
        network=preset.roar_network,
        validation=preset.roar_validation,
        longer_reference=preset.roar_longer,
        convergence_tolerance=preset.roar_tolerance,
        mask_only=preset.roar_mask_only,
        other_class=tuple(m for m in preset.roar_other_class if m in methods),
        replacement=preset.roar_replacement,
        batch_size=128,
    )


#: measured throughput on 2 idle CPU cores (torch 2 threads), used for the expected cost: training
#: samples per second of the retrained network (RoarNet width 16 about 4x FashionResNet width 16,
#: measured side by side; FashionResNet 16: 1,090/s in the committed full run of 2 epochs x 5,000)
_TRAIN_SAMPLES_PER_S = {"roarnet": 4000.0, "resnet8": 1100.0}
#: seconds per image of each method's map on the shipped FashionResNet, 2 idle cores (IG: 50 steps)
_MAP_S_PER_IMAGE = {
    "integrated_gradients": 0.025,
    "smoothgrad": 0.02,
    "fullgrad": 0.004,
    "prunegrad": 0.004,
    "random": 0.0005,
    "edge": 0.0005,
}


def roar_cost(preset: Preset, methods: Sequence[str], num_train: int, num_test: int) -> str:
    """One line: what ROAR will train and about how long it takes on 2 idle CPU cores."""
    config = roar_config(preset, methods)
    names = [*methods, *(f"{m}@other_class" for m in config.other_class)]
    rankings, cells = len(names), config.num_cells(names)
    fit = num_train * (1 - config.validation)
    per_cell = config.recipe.epochs * fit / _TRAIN_SAMPLES_PER_S[config.network] + 1.0
    map_s = (num_train + num_test) * sum(
        _MAP_S_PER_IMAGE.get(m, 0.002) for m in (*methods, *config.other_class)
    )
    total = cells * per_cell + map_s
    return (
        f"ROAR ({preset.name}): {rankings} rankings x {len(config.fractions)} fractions x "
        f"{len(config.seeds)} seeds{' (+ mask-only)' if config.mask_only else ''}: {cells} "
        f"retrainings of {config.network} ({config.recipe.epochs} epochs on {fit:.0f} images, "
        f"about {per_cell:.0f} s each) + maps of {num_train + num_test} images (about "
        f"{map_s / 60:.0f} min): expect about {total / 60:.0f} min on 2 idle CPU cores "
        "(longer under load; a GPU is much faster). Finished cells are cached."
    )
