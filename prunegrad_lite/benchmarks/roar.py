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
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    load_tensor_cell,
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
from prunegrad_lite.training import TrainConfig, tensor_pair, train_model

__all__ = [
    "DEFAULT_ROAR_FRACTIONS",
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


@dataclass(frozen=True)
class RoarConfig:
    """The ROAR protocol. ``recipe`` is the training recipe of every retrained cell.

    The default recipe is :class:`~prunegrad_lite.training.TrainConfig` with 2 epochs instead
    of 4: 75+ retrainings must fit a CPU budget; it is the same for every cell, and the
    reference cells (fraction 0) show what it reaches on unmodified images.
    """

    fractions: tuple[float, ...] = DEFAULT_ROAR_FRACTIONS  # top fractions removed, in (0, 1)
    seeds: tuple[int, ...] = (0, 1, 2)  # one retraining per seed and cell
    recipe: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, batch_size=64))
    baseline: bool = True  # also retrain on unmodified images (fraction 0), per seed
    mask_only: bool = False  # also train on the removal mask alone: how much the mask leaks
    batch_size: int = 128  # images per attribution call

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", check_fractions(self.fractions))
        seeds = tuple(dict.fromkeys(int(s) for s in self.seeds))
        if not seeds:
            raise ValueError("give at least one seed")
        object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.recipe, TrainConfig):
            raise ValueError(f"recipe must be a TrainConfig, got {type(self.recipe).__name__}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")


def recipe_hash(recipe: TrainConfig) -> str:
    """12 hex digits identifying a training recipe, its seed excluded (seeds key cells apart)."""
    fields = {k: v for k, v in dataclasses.asdict(recipe).items() if k != "seed"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _tensor_digest(digest: Any, tensor: Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    digest.update(str((tuple(t.shape), str(t.dtype))).encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def setup_hash(model: nn.Module, *tensors: Tensor, extra: Any = None) -> str:
    """16 hex digits identifying a model's weights, some tensors and JSON-able ``extra``."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        _tensor_digest(digest, value)
    for t in tensors:
        _tensor_digest(digest, t)
    digest.update(json.dumps(extra, sort_keys=True, default=repr).encode())
    return digest.hexdigest()[:16]


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
        :class:`~prunegrad_lite.LabeledData`, or ``(images, labels)`` pairs.
    methods : names of :data:`~prunegrad_lite.METHODS` or ``Attribution`` subclasses; include ``"random"`` for the control.
    config : the protocol (default :class:`RoarConfig`: 10..90%, seeds 0-2, 2-epoch recipe).
    cache_dir : folder for the maps and the retrained cells (None: nothing cached; a run
        cannot resume).
    device : where to compute maps and retrain (None: CUDA when available, else CPU).
    seed : seeds the ranking's tie-breaking and the random control; default 0. Training
        seeds are ``config.seeds``.
    progress : tqdm progress bars (cells, maps, epochs).
    method_options : ``{method: {option: value}}`` for the methods' constructors.
    model_fn : builds the retrained architecture (default: ``train_model``'s FashionResNet
        with ``config.recipe``'s width and classes).
    model_name : the name written into the results.
    on_cell : called with each cell's record when it is done (computed or cached).

    Curves: ``("accuracy", "roar")`` per method, step 0 the reference (fraction 0) when
    ``config.baseline``. Scores: ``roar_auc`` and ``acc@{t}`` for every fraction (lower is
    better).
    """
    config = config or RoarConfig()
    classes = check_methods(methods)
    names = list(classes)
    check_options(method_options, names)
    train_x, train_y = _pair(train, "train")
    test_x, test_y = _pair(test, "test")
    model = on_device(model, device)
    cache = None if cache_dir is None else Path(cache_dir)
    recipe = recipe_hash(config.recipe)
    fill = train_x.mean(dim=(0, 2, 3))  # (C,) per-channel mean of the training images
    all_x = torch.cat([train_x, test_x])  # maps for train and test in one pass
    target = predict(model, all_x, 512).argmax(1)  # (N,) predicted classes

    ranks: dict[str, Tensor] = {}
    setups: dict[str, str] = {}
    for name in names:
        options = options_for(method_options, name)
        setups[name] = setup_hash(
            model,
            all_x,
            train_y,
            test_y,
            extra={
                "method": name,
                "class": _qualname(classes[name]),
                "options": options,
                "seed": seed,
            },
        )
        ranks[name] = _load_or_compute_ranks(
            model,
            all_x,
            name,
            classes[name],
            options,
            target,
            cache,
            setups[name],
            config.batch_size,
            seed,
            progress,
        )
    base_setup = setup_hash(model, train_x, train_y, test_x, test_y, extra=BASELINE)

    cells = [(BASELINE, 0.0, s, "roar") for s in config.seeds] if config.baseline else []
    cells += [(m, f, s, "roar") for s in config.seeds for f in config.fractions for m in names]
    if config.mask_only:
        cells += [
            (m, f, s, "mask_only") for s in config.seeds for f in config.fractions for m in names
        ]
    records: dict[tuple[str, float, int, str], dict[str, Any]] = {}
    bar = tqdm(cells, desc="ROAR cells", disable=not progress)
    channels, size = train_x.shape[1], (train_x.shape[2], train_x.shape[3])
    for name, fraction, train_seed, variant in bar:
        setup = base_setup if name == BASELINE else setups[name]
        folder = name if variant == "roar" else f"{name}.{variant}"
        path = (
            None
            if cache is None
            else roar_cell_path(cache, setup, folder, fraction, train_seed, recipe)
        )
        bar.set_postfix(method=name, fraction=fraction, seed=train_seed, variant=variant)
        record = None if path is None else load_json_cell(path, _CELL_KEYS, kind="roar-cell")
        if record is None:  # missing or unreadable (warned): compute it, holding its lock
            if name == BASELINE:
                x_tr, x_te = train_x, test_x
            elif variant == "mask_only":
                rank = ranks[name]
                x_tr = removal_mask_images(rank[: len(train_x)], fraction, channels, size)
                x_te = removal_mask_images(rank[len(train_x) :], fraction, channels, size)
            else:
                rank = ranks[name]
                x_tr = mask_top_pixels(train_x, rank[: len(train_x)], fraction, fill)
                x_te = mask_top_pixels(test_x, rank[len(train_x) :], fraction, fill)
            result = train_model(
                (x_tr, train_y),
                (x_te, test_y),
                dataclasses.replace(config.recipe, seed=train_seed),
                device=device,
                progress=progress,
                model_fn=model_fn,
            )
            record = {
                "method": name,
                "variant": variant,
                "fraction": fraction,
                "seed": train_seed,
                "recipe_hash": recipe,
                "setup_hash": setup,
                "recipe": dataclasses.asdict(config.recipe) | {"seed": train_seed},
                "test_accuracy": result.test_accuracy,
                "history": [dataclasses.asdict(h) for h in result.history],
                "wall_time_s": result.wall_time_s,
            }
            if path is not None:
                store_json_cell(path, record, kind="roar-cell")
        records[(name, fraction, train_seed, variant)] = record
        if on_cell is not None:
            on_cell(record)
    bar.close()
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    return _result(names, records, config, model_name, seed, recipe, method_options, num_classes)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _pair(data: Any, what: str) -> tuple[Tensor, Tensor]:
    images, labels = tensor_pair(data, what)  # checks the shapes
    if not len(images):
        raise ValueError(f"{what} holds no images")
    return images.detach().float().cpu(), labels.detach().long().cpu()


def _result(
    names: list[str],
    records: Mapping[tuple[str, float, int], dict[str, Any]],
    config: RoarConfig,
    model_name: str,
    seed: int,
    recipe: str,
    method_options: MethodOptions | None,
    num_classes: int,
) -> BenchmarkResult:
    seeds = config.seeds
    acc = {key: float(r["test_accuracy"]) for key, r in records.items()}
    curves: list[CurvePoint] = []
    scores: list[Score] = []
    base = (
        torch.tensor([acc[(BASELINE, 0.0, s, "roar")] for s in seeds]) if config.baseline else None
    )
    for name in names:
        table = torch.tensor(
            [[acc[(name, f, s, "roar")] for f in config.fractions] for s in seeds]
        )  # (S, F)
        points = [] if base is None else [(0.0, "0% (reference)", base)]
        points += [(f, fraction_label(f), table[:, j]) for j, f in enumerate(config.fractions)]
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
    mask_only_names = names if config.mask_only else []
    for name in mask_only_names:
        for step, f in enumerate(config.fractions):
            values = torch.tensor([acc[(name, f, s, "mask_only")] for s in seeds])
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
    settings: dict[str, Any] = {
        "fractions": list(config.fractions),
        "seeds": list(seeds),
        "recipe": dataclasses.asdict(config.recipe),
        "recipe_hash": recipe,
        "baseline": config.baseline,
        "mask_only": config.mask_only,
        "chance": 1.0 / num_classes,  # the mask-only control's accuracy without leakage
        "reference_accuracy": None if base is None else [float(v) for v in base],
        "fill": "per-channel mean of the training images (normalised units)",
        "ranking": "max over channels of |attribution|, ties broken at random (seeded)",
        "seed": seed,
        "method_options": describe_options(method_options),
        "cells": [
            {
                "variant": variant,
                **{k: r[k] for k in ("method", "fraction", "seed", "test_accuracy", "wall_time_s")},
            }
            for (_, _, _, variant), r in records.items()
        ],
    }
    return BenchmarkResult("roar", model_name, names, curves, scores, settings)
