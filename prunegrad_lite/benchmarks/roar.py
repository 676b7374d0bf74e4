"""ROAR, RemOve And Retrain (Hooker et al. 2019): is the accuracy lost when the top pixels go?

Protocol (spec section 3, fixed before looking at results):

* maps are computed **once per method** with the original model, for the class it predicts,
  for every train and test image, and cached (``cache_dir/maps``);
* pixels are ranked by ``max_c |A_c|`` (ties at random, seeded); for each fraction t (default
  10, 30, 50, 70, 90%) the top-t pixels of every train and test image are replaced, all channels
  together, by the **per-channel mean of the training images** (in normalised units);
* a model is **retrained from scratch** on the modified training set with one recipe (a
  :class:`~prunegrad_lite.training.TrainConfig`, identical for every cell except its seed) by
  :func:`~prunegrad_lite.training.train_model`, the package's one training function, and its
  accuracy on the modified test set is the cell's result (lower is better: the removed pixels
  mattered);
* every (method, fraction) cell is retrained with several seeds (default 0, 1, 2: error bars);
  a "random" method is the random-ranking control, and fraction 0 (unmodified images, same
  recipe, same seeds) is the reference accuracy;
* score: the area under accuracy-vs-fraction over the fractions run, divided by their range
  (the mean accuracy over the removal range), per seed, then mean and std over seeds;
* optional **mask-only control** (``RoarConfig(mask_only=True)``, not in the paper): ROAR
  assumes that replacing the top pixels removes their information, but *where* they were
  removed stays visible. A ranking that follows the object draws its silhouette in the mean
  colour, which the retrained network can read. For every method, fraction and seed a network
  is also trained, with the same recipe, on the removal mask alone (1 where ROAR replaces a
  pixel, 0 elsewhere, in every channel); its test accuracy (scores ``mask_only@t``, chance =
  1 / number of classes) measures how much of the class the mask gives away. A random ranking
  gives chance by construction.

Caching and resuming: each retrained cell is a JSON record in
``cache_dir/roar/<setup>/<method>/t<fraction>_s<seed>_<recipe hash>.json`` written atomically,
where ``<setup>`` hashes the model weights, the images, the method options and the ranking
seed. A finished cell is never recomputed; an interrupted run resumes at the first missing one.
Two processes on the same ``cache_dir`` share the work: a cell (or the maps it needs) that
the other process is computing is put at the end of its phase (the references first, then the
grid) and read from the cache when it is done. With ``reproduce``, start the second process
with ``PRUNEGRAD_LITE_LOCK_TIMEOUT=2`` so that it does not wait for the first one's whole
result; on a loaded machine two single-thread processes (``OMP_NUM_THREADS=1``) also avoid
the thread-synchronisation stalls of one two-thread process.

Example
-------
>>> train, test = load_dataset("fashion_mnist", "train"), load_dataset("fashion_mnist", "test")
>>> result = roar(model, train, test, ["gradient", "prunegrad", "random"], cache_dir="runs/cache")
>>> result.score("prunegrad", "roar_auc")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from prunegrad_lite.benchmarks.attribution_maps import (
    MethodLike,
    MethodOptions,
    check_methods,
    check_options,
    compute_maps,
    describe_options,
    on_device,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.cache import (
    check_ranks,
    load_json_cell,
    locked_elsewhere,
    load_tensor_cell,
    setup_hash,
    store_json_cell,
    store_tensor_cell,
)
from prunegrad_lite.benchmarks.removal import (
    check_fractions,
    fraction_label,
    rank_pixels,
    removal_masks,
)
from prunegrad_lite.benchmarks.results import (
    BenchmarkResult,
    CurvePoint,
    Score,
    area_under_curve,
    mean_std,
)
from prunegrad_lite.benchmarks.roar_models import RoarNet
from prunegrad_lite.benchmarks.stats import paired_difference
from prunegrad_lite.models import FashionResNet
from prunegrad_lite.training import TrainConfig, tensor_pair, train_model

__all__ = [
    "DEFAULT_ROAR_FRACTIONS",
    "NETWORKS",
    "REPLACEMENTS",
    "RecipeNotConverged",
    "ROAR_RECIPE",
    "RoarConfig",
    "mask_top_pixels",
    "removal_mask_images",
    "recipe_hash",
    "roar",
    "roar_cell_path",
    "setup_hash",
]

DEFAULT_ROAR_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
BASELINE = "none"  # the method name of the fraction-0 reference cells
_CELL_KEYS = ("method", "variant", "fraction", "seed", "test_accuracy")  # a cached cell has these


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


def roar_cell_path(
    cache_dir: str | os.PathLike, setup: str, method: str, fraction: float, seed: int, recipe: str
) -> Path:
    """Where the record of one retrained cell lives (see the module docstring)."""
    return Path(cache_dir) / "roar" / setup / method / f"t{fraction:.4f}_s{seed}_{recipe}.json"


def mask_top_pixels(images: Tensor, rank: Tensor, fraction: float, fill: Tensor) -> Tensor:
    """Replace the top ``fraction`` of pixels of every image by ``fill``, all channels together.

    ``images`` (N, C, H, W); ``rank`` (N, H*W) from
    :func:`~prunegrad_lite.benchmarks.removal.rank_pixels` (0 = most important); ``fill`` (C,)
    per-channel values. Returns a new tensor; ``round(fraction * H * W)`` pixels are replaced.

    Example
    -------
    >>> mask_top_pixels(x, rank, 0.5, x.mean(dim=(0, 2, 3)))      # (N, C, H, W)
    """
    c, h, w = images.shape[1:]
    removed = removal_masks(rank, [fraction], "morf", (h, w))[0].unsqueeze(1)  # (N, 1, H, W)
    return torch.where(removed, fill.view(1, c, 1, 1).to(images), images)


def removal_mask_images(
    rank: Tensor, fraction: float, channels: int, size: tuple[int, int]
) -> Tensor:
    """The mask-only control's inputs: 1 where ROAR replaces a pixel, 0 elsewhere.

    ``rank`` (N, H*W) as for :func:`mask_top_pixels`; returns (N, channels, H, W) float32 with
    the same value in every channel.

    Example
    -------
    >>> removal_mask_images(rank, 0.5, 1, (28, 28)).mean()      # 0.5: half the pixels removed
    """
    removed = removal_masks(rank, [fraction], "morf", size)[0].unsqueeze(1)  # (N, 1, H, W)
    return removed.float().expand(-1, channels, -1, -1).contiguous()


def _load_or_compute_ranks(
    model: nn.Module,
    images: Tensor,
    name: str,
    method: MethodLike,
    options: dict[str, Any],
    target: Tensor,
    cache_dir: Path | None,
    setup: str,
    batch_size: int,
    seed: int,
    progress: bool,
) -> Tensor:
    """Pixel ranks (N, H*W) of one method for all images, from the cache when there."""
    path = None if cache_dir is None else cache_dir / "maps" / setup / f"{name}.pt"
    size = (images.shape[0], images.shape[-2] * images.shape[-1])  # validated read (cache.py)
    cached = None if path is None else load_tensor_cell(path, shape=size, check=check_ranks)
    if cached is not None:
        return cached.long()
    maps = compute_maps(
        model,
        images,
        method,
        options=options,
        target=target,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        desc=f"ROAR maps: {name}",
    )
    rank = rank_pixels(maps, torch.Generator().manual_seed(seed))  # (N, P)
    if path is not None:
        small = rank.to(torch.int16 if rank.shape[1] < 2**15 else torch.int32)
        store_tensor_cell(path, small)  # checksummed, atomic; releases the lock
    return rank


def _other_class_targets(predicted: Tensor, num_classes: int, seed: int) -> Tensor:
    """A random class per image, never the predicted one (seeded)."""
    if num_classes < 2:
        raise ValueError("the other-class control needs at least two classes")
    generator = torch.Generator().manual_seed(seed + 7919)
    offset = torch.randint(1, num_classes, predicted.shape, generator=generator)  # (N,)
    return (predicted + offset) % num_classes


def _validation_split(num: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (train, validation) of ``num`` training images; the same for every cell."""
    order = torch.randperm(num, generator=torch.Generator().manual_seed(seed + 104729))
    held = int(round(fraction * num))
    if fraction > 0 and (held < 2 or num - held < 2):
        raise ValueError(f"{num} training images are too few for a {fraction:.0%} validation split")
    return order[held:].sort().values, order[:held].sort().values


def _network_fn(
    config: RoarConfig, channels: int, classes: int, model_fn: Callable[[], nn.Module] | None
) -> Callable[[], nn.Module]:
    if model_fn is not None:
        return model_fn
    if config.network == "roarnet":
        return lambda: RoarNet(channels, classes, config.recipe.width)
    return lambda: FashionResNet(channels, classes, config.recipe.width)


def _replace(images: Tensor, removed: Tensor, fill: Tensor, how: str, seed: int) -> Tensor:
    """``images`` (N, C, H, W) with the ``removed`` (N, 1, H, W) pixels replaced, all channels."""
    if how == "mean":
        c = images.shape[1]
        return torch.where(removed, fill.view(1, c, 1, 1).to(images), images)
    from prunegrad_lite.benchmarks.imputation import noisy_linear_impute

    generator = torch.Generator().manual_seed(seed)
    chunk = 256  # images per sparse system: bounded memory, one solve per chunk
    return torch.cat(
        [
            noisy_linear_impute(images[i : i + chunk], removed[i : i + chunk], generator=generator)
            for i in range(0, len(images), chunk)
        ]
    )


def roar(
    model: nn.Module,
    train: Any,
    test: Any,
    methods: MethodLike | Sequence[MethodLike],
    config: RoarConfig | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
    method_options: MethodOptions | None = None,
    model_fn: Callable[[], nn.Module] | None = None,
    model_name: str = "model",
    on_cell: Callable[[dict[str, Any]], None] | None = None,
) -> BenchmarkResult:
    """Run ROAR for every method: remove the top pixels, retrain from scratch, test.

    Parameters
    ----------
    model : the trained classifier whose maps rank the pixels (eval mode; never modified).
    train, test : objects with ``.images`` (N, C, H, W) normalised and ``.labels`` (N,), e.g.
        :class:`~prunegrad_lite.LabeledData`, or ``(images, labels)`` pairs. A fraction
        ``config.validation`` of ``train`` is held out to pick each cell's checkpoint.
    methods : names of :data:`~prunegrad_lite.METHODS` or ``Attribution`` subclasses; include
        ``"random"`` (and ``"edge"``) for the controls.
    config : the protocol (default :class:`RoarConfig`).
    cache_dir : folder for the maps and the retrained cells (None: nothing cached; a run
        cannot resume).
    device : where to compute maps and retrain (None: CUDA when available, else CPU).
    seed : seeds the ranking's tie-breaking, the random control, the other-class targets, the
        validation split and the imputation noise; default 0. Training seeds are
        ``config.seeds``.
    progress : tqdm progress bars (cells, maps, epochs).
    method_options : ``{method: {option: value}}`` for the methods' constructors.
    model_fn : builds the retrained network (default: ``config.network``).
    model_name : the name written into the results.
    on_cell : called with each cell's record when it is done (computed or cached).

    Curves: ``("accuracy", "roar")`` per ranking, step 0 the reference (fraction 0) when
    ``config.baseline``, and ``("accuracy", "mask_only")`` with ``config.mask_only``. Scores:
    ``roar_auc``, ``acc@{t}`` and ``mask_only@{t}`` (lower is better). Per-unit values: every
    test image's correctness (0/1) for every seed, ``result.unit_values(name, "accuracy",
    variant, step)`` (S, N). ``settings["comparisons"]``: paired differences with 95% crossed
    bootstrap intervals (seeds x test images) and their verdicts.
    """
    config = config or RoarConfig()
    classes = check_methods(methods)
    names = list(classes)
    check_options(method_options, names)
    unknown = [m for m in config.other_class if m not in classes]
    if unknown:
        raise ValueError(f"other_class names {unknown} that are not among the methods {names}")
    train_x, train_y = _pair(train, "train")
    test_x, test_y = _pair(test, "test")
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    model = on_device(model, device)
    cache = None if cache_dir is None else Path(cache_dir)
    recipe = recipe_hash(config.recipe, config)
    fill = train_x.mean(dim=(0, 2, 3))  # (C,) per-channel mean of the training images
    all_x = torch.cat([train_x, test_x])  # maps for train and test in one pass
    predicted = predict(model, all_x, 512).argmax(1)  # (N,) predicted classes
    rankings = [(name, name, predicted, "predicted") for name in names]
    if config.other_class:
        other = _other_class_targets(predicted, num_classes, seed)
        rankings += [(f"{m}@other_class", m, other, "other_class") for m in config.other_class]

    ranks: dict[str, Tensor] = {}
    setups: dict[str, str] = {}
    specs: dict[str, tuple[str, Tensor, dict[str, Any]]] = {}
    for label, method, target, which in rankings:
        options = options_for(method_options, method)
        extra = {"method": method, "class": _qualname(classes[method]), "options": options}
        extra["seed"] = seed
        if which != "predicted":
            extra["target"] = which
        setups[label] = setup_hash(model, all_x, train_y, test_y, extra=extra)
        specs[label] = (method, target, options)

    def rank_of(label: str) -> Tensor:
        """The ranking's pixel ranks, computed (or read from the cache) when first needed:
        the reference cells run before any map is computed."""
        if label not in ranks:
            method, target, options = specs[label]
            ranks[label] = _load_or_compute_ranks(
                model,
                all_x,
                label,
                classes[method],
                options,
                target,
                cache,
                setups[label],
                config.batch_size,
                seed,
                progress,
            )
        return ranks[label]

    labels = [label for label, *_ in rankings]
    base_setup = setup_hash(model, train_x, train_y, test_x, test_y, extra=BASELINE)
    fit_index, val_index = _validation_split(len(train_x), config.validation, seed)
    network = _network_fn(config, train_x.shape[1], config.recipe.num_classes, model_fn)

    # the references first, seed by seed: whether the recipe converges is known before any
    # map is computed and before the grid runs
    cells = []
    for s in config.seeds:
        cells += [(BASELINE, 0.0, s, "roar")] if config.baseline else []
        cells += [(BASELINE, 0.0, s, "longer")] if config.longer_reference else []
    cells += [(m, f, s, "roar") for s in config.seeds for f in config.fractions for m in labels]
    if config.mask_only:
        cells += [
            (m, f, s, "mask_only")
            for s in config.seeds
            for f in config.fractions
            for m in labels
            if m != "random"  # the random ranking's mask is independent of the image: chance
        ]
    num_references = sum(name == BASELINE for name, *_ in cells)
    records: dict[tuple[str, float, int, str], dict[str, Any]] = {}
    bar = tqdm(total=len(cells), desc="ROAR cells", disable=not progress)
    channels, size = train_x.shape[1], (train_x.shape[2], train_x.shape[3])
    # a cell another process (same cache folder) is computing goes to the end of its phase
    # (references, then the grid), so that two processes share the work; when every cell left
    # in the phase is taken, this one waits for it and reuses it (cache.py)
    pending, skipped = deque(cells), 0
    while pending:
        name, fraction, train_seed, variant = pending.popleft()
        setup = base_setup if name == BASELINE else setups[name]
        folder = name if variant == "roar" else f"{name}.{variant}"
        path = (
            None
            if cache is None
            else roar_cell_path(cache, setup, folder, fraction, train_seed, recipe)
        )
        if path is not None and _taken_elsewhere(path, name, cache, setups, ranks):
            same = [i for i, c in enumerate(pending) if (c[0] == BASELINE) == (name == BASELINE)]
            if same and skipped <= len(same):
                pending.insert(same[-1] + 1, (name, fraction, train_seed, variant))
                skipped += 1
            else:  # every cell left in this phase is taken: wait, then read what they stored
                pending.appendleft((name, fraction, train_seed, variant))
                skipped = 0
                time.sleep(2.0)
            continue
        skipped = 0
        bar.set_postfix(method=name, fraction=fraction, seed=train_seed, variant=variant)
        record = None if path is None else load_json_cell(path, _CELL_KEYS, kind="roar-cell")
        if record is None:  # missing or unreadable (warned): compute it, holding its lock
            recipe_cell = dataclasses.replace(config.recipe, seed=train_seed)
            if name == BASELINE:
                x_tr, x_te = train_x, test_x
                if variant == "longer":
                    recipe_cell.epochs *= config.longer_reference
            elif variant == "mask_only":
                rank = rank_of(name)
                x_tr = removal_mask_images(rank[: len(train_x)], fraction, channels, size)
                x_te = removal_mask_images(rank[len(train_x) :], fraction, channels, size)
            else:
                removed = removal_masks(rank_of(name), [fraction], "morf", size)[0].unsqueeze(1)
                x_all = _replace(all_x, removed, fill, config.replacement, seed)
                x_tr, x_te = x_all[: len(train_x)], x_all[len(train_x) :]
            validation = None
            if config.validation > 0:
                validation = (x_tr[val_index], train_y[val_index])
                x_fit, y_fit = x_tr[fit_index], train_y[fit_index]
            else:
                x_fit, y_fit = x_tr, train_y
            result = train_model(
                (x_fit, y_fit),
                (x_te, test_y),
                recipe_cell,
                device=device,
                progress=progress,
                model_fn=network,
                validation=validation,
            )
            correct = _correct(result.model, x_te, test_y)
            record = {
                "method": name,
                "variant": variant,
                "fraction": fraction,
                "seed": train_seed,
                "recipe_hash": recipe,
                "setup_hash": setup,
                "recipe": dataclasses.asdict(recipe_cell),
                "network": config.network if model_fn is None else "model_fn",
                "test_accuracy": result.test_accuracy,
                "validation_accuracy": result.validation_accuracy,
                "best_epoch": result.best_epoch,
                "correct": "".join("1" if c else "0" for c in correct.tolist()),
                "history": [dataclasses.asdict(h) for h in result.history],
                "wall_time_s": result.wall_time_s,
            }
            if path is not None:
                store_json_cell(path, record, kind="roar-cell")
        records[(name, fraction, train_seed, variant)] = record
        bar.update(1)
        if on_cell is not None:
            on_cell(record)
        if config.convergence_tolerance is not None and len(records) == num_references:
            _check_convergence(records, config)
    bar.close()
    return _result(
        labels, records, config, model_name, seed, recipe, method_options, num_classes, len(test_y)
    )


def _taken_elsewhere(
    path: Path,
    name: str,
    cache: Path | None,
    setups: Mapping[str, str],
    ranks: Mapping[str, Tensor],
) -> bool:
    """Is another process computing this cell, or the maps it needs (same cache folder)?"""
    if locked_elsewhere(path):
        return True
    if name == BASELINE or name in ranks or cache is None:
        return False
    return locked_elsewhere(cache / "maps" / setups[name] / f"{name}.pt")


class RecipeNotConverged(RuntimeError):
    """The ROAR recipe's reference is further than the tolerance below its longer run."""


def _check_convergence(
    records: Mapping[tuple[str, float, int, str], dict[str, Any]], config: RoarConfig
) -> None:
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


@torch.no_grad()
def _correct(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1024) -> Tensor:
    """(N,) bool: is each test image classified correctly by the (eval-mode) model."""
    dev = next(model.parameters()).device
    out = [
        model(images[i : i + batch_size].to(dev)).argmax(1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) == labels


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _pair(data: Any, what: str) -> tuple[Tensor, Tensor]:
    images, labels = tensor_pair(data, what)  # checks the shapes
    if not len(images):
        raise ValueError(f"{what} holds no images")
    return images.detach().float().cpu(), labels.detach().long().cpu()


def _units(record: dict[str, Any]) -> Tensor:
    return torch.tensor([c == "1" for c in record["correct"]], dtype=torch.float64)


def _comparisons(
    result: BenchmarkResult,
    names: list[str],
    steps: list[tuple[int, str]],
    variant: str,
    fractions: Sequence[float],
) -> list[dict[str, Any]]:
    """PruneGrad (when run) against every other ranking, and every ranking against random:
    paired differences of per-image correctness over seeds x test images, per fraction and
    over the whole removal range (``area``: each image's correctness integrated over the
    fractions like ``roar_auc``, trapezoids divided by the range, so that the mean of the
    per-image areas is the score)."""
    pairs: list[tuple[str, str]] = []
    if "prunegrad" in names:
        pairs += [("prunegrad", m) for m in names if m != "prunegrad"]
    if "random" in names:
        pairs += [(m, "random") for m in names if m not in ("random", "prunegrad")]
    out = []
    for a, b in pairs:
        if variant == "mask_only" and "random" in (a, b):
            continue
        tables_a = [result.unit_values(a, "accuracy", variant, step) for step, _ in steps]
        tables_b = [result.unit_values(b, "accuracy", variant, step) for step, _ in steps]
        rows = [(label, ta, tb) for (_, label), ta, tb in zip(steps, tables_a, tables_b)]
        if len(fractions) > 1:
            area_a = area_under_curve(fractions, np.stack(tables_a, axis=-1), dim=-1)
            area_b = area_under_curve(fractions, np.stack(tables_b, axis=-1), dim=-1)
            rows.append(("area", area_a.numpy(), area_b.numpy()))
        for label, ta, tb in rows:
            c = paired_difference(ta, tb, resamples=2000, seed=0)
            out.append(
                {
                    "a": a,
                    "b": b,
                    "variant": variant,
                    "at": label,
                    "claim": "lower",
                    "difference": c.difference,
                    "low": c.low,
                    "high": c.high,
                    "seeds": c.seeds,
                    "images": c.n,
                    "verdict": c.verdict("lower"),
                }
            )
    return out


def _result(
    names: list[str],
    records: Mapping[tuple[str, float, int, str], dict[str, Any]],
    config: RoarConfig,
    model_name: str,
    seed: int,
    recipe: str,
    method_options: MethodOptions | None,
    num_classes: int,
    num_test: int,
) -> BenchmarkResult:
    seeds = config.seeds
    acc = {key: float(r["test_accuracy"]) for key, r in records.items()}
    curves: list[CurvePoint] = []
    scores: list[Score] = []
    units: dict[tuple[str, str, int], Tensor] = {}
    base = None
    if config.baseline:
        base = torch.tensor([acc[(BASELINE, 0.0, s, "roar")] for s in seeds])
        base_units = torch.stack([_units(records[(BASELINE, 0.0, s, "roar")]) for s in seeds])
    for name in names:
        table = torch.tensor(
            [[acc[(name, f, s, "roar")] for f in config.fractions] for s in seeds]
        )  # (S, F)
        points = [] if base is None else [(0.0, "0% (reference)", base)]
        points += [(f, fraction_label(f), table[:, j]) for j, f in enumerate(config.fractions)]
        first = 0 if base is None else 1
        if base is not None:
            units[(name, "roar", 0)] = base_units
        for j, f in enumerate(config.fractions):
            units[(name, "roar", first + j)] = torch.stack(
                [_units(records[(name, f, s, "roar")]) for s in seeds]
            )
        for step, (x, label, values) in enumerate(points):
            m, sd, n = mean_std(values)
            curves.append(
                CurvePoint(name, "accuracy", "roar", step, x, label, float(m), float(sd), int(n))
            )
        if len(config.fractions) > 1:
            am, asd, an = mean_std(area_under_curve(config.fractions, table, dim=1))
            scores.append(Score(name, "roar_auc", float(am), float(asd), int(an), "lower"))
        for j, f in enumerate(config.fractions):
            m, sd, n = mean_std(table[:, j])
            scores.append(
                Score(name, f"acc@{fraction_label(f)}", float(m), float(sd), int(n), "lower")
            )
    mask_only_names = [n for n in names if n != "random"] if config.mask_only else []
    for name in mask_only_names:
        for step, f in enumerate(config.fractions):
            values = torch.tensor([acc[(name, f, s, "mask_only")] for s in seeds])
            units[(name, "mask_only", step)] = torch.stack(
                [_units(records[(name, f, s, "mask_only")]) for s in seeds]
            )
            m, sd, n = mean_std(values)
            curves.append(
                CurvePoint(
                    name,
                    "accuracy",
                    "mask_only",
                    step,
                    f,
                    fraction_label(f),
                    float(m),
                    float(sd),
                    int(n),
                )
            )
            scores.append(
                Score(name, f"mask_only@{fraction_label(f)}", float(m), float(sd), int(n), "lower")
            )
    longer = None
    if config.longer_reference:
        longer = [float(acc[(BASELINE, 0.0, s, "longer")]) for s in seeds]
    ref_mean = None if base is None else float(base.mean())
    settings: dict[str, Any] = {
        "fractions": list(config.fractions),
        "seeds": list(seeds),
        "recipe": dataclasses.asdict(config.recipe),
        "recipe_hash": recipe,
        "network": config.network,
        "validation": config.validation,
        "replacement": config.replacement,
        "baseline": config.baseline,
        "mask_only": config.mask_only,
        "other_class": list(config.other_class),
        "chance": 1.0 / num_classes,  # the mask-only control's accuracy without leakage
        "num_test": num_test,
        # a cell's binomial standard error at the reference accuracy, sqrt(p (1 - p) / N)
        "binomial_se": None
        if ref_mean is None
        else math.sqrt(ref_mean * (1 - ref_mean) / num_test),
        "reference_accuracy": None if base is None else [float(v) for v in base],
        "longer_reference": config.longer_reference,
        "reference_accuracy_3x_longer": longer if config.longer_reference == 3 else None,
        "reference_accuracy_longer": longer,
        "fill": "per-channel mean of the training images (normalised units)"
        if config.replacement == "mean"
        else "noisy linear imputation (ROAD, Rong et al. 2022)",
        "ranking": "max over channels of |attribution|, ties broken at random (seeded)",
        "seed": seed,
        "method_options": describe_options(method_options),
        "cells": [
            {
                "variant": variant,
                **{k: r[k] for k in ("method", "fraction", "seed", "test_accuracy", "wall_time_s")},
                "best_epoch": r.get("best_epoch"),
            }
            for (_, _, _, variant), r in records.items()
        ],
    }
    result = BenchmarkResult("roar", model_name, names, curves, scores, settings)
    for (name, variant, step), table in units.items():
        result.set_units(name, "accuracy", variant, step, table)
    steps = [(1 if base is not None else 0) + j for j in range(len(config.fractions))]
    labels = [fraction_label(f) for f in config.fractions]
    fractions = list(config.fractions)
    comparisons = _comparisons(result, names, list(zip(steps, labels)), "roar", fractions)
    if config.mask_only:
        comparisons += _comparisons(
            result,
            mask_only_names,
            list(zip(range(len(labels)), labels)),
            "mask_only",
            fractions,
        )
    settings["comparisons"] = comparisons
    return result
