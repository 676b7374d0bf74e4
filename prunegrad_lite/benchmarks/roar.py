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
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
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
    on_device,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.cache import (
    load_json_cell,
    locked_elsewhere,
    setup_hash,
    store_json_cell,
)
from prunegrad_lite.benchmarks.removal import removal_masks
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.roar_config import (
    BASELINE,
    DEFAULT_ROAR_FRACTIONS,
    NETWORKS,
    REPLACEMENTS,
    ROAR_RECIPE,
    RecipeNotConverged,
    RoarConfig,
    check_convergence,
    recipe_hash,
)
from prunegrad_lite.benchmarks.roar_inputs import (
    load_or_compute_ranks,
    mask_top_pixels,
    other_class_targets,
    removal_mask_images,
    replace_removed,
    validation_split,
)
from prunegrad_lite.benchmarks.roar_models import network_fn
from prunegrad_lite.benchmarks.roar_results import roar_result
from prunegrad_lite.training import TrainConfig, tensor_pair, train_model

# the protocol's settings (roar_config), inputs (roar_inputs) and result (roar_results) are
# re-exported: ``from prunegrad_lite.benchmarks.roar import RoarConfig`` keeps working
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

_CELL_KEYS = ("method", "variant", "fraction", "seed", "test_accuracy")  # a cached cell has these


def roar_cell_path(
    cache_dir: str | os.PathLike, setup: str, method: str, fraction: float, seed: int, recipe: str
) -> Path:
    """Where the record of one retrained cell lives (see the module docstring)."""
    return Path(cache_dir) / "roar" / setup / method / f"t{fraction:.4f}_s{seed}_{recipe}.json"


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
        other = other_class_targets(predicted, num_classes, seed)
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
            ranks[label] = load_or_compute_ranks(
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
    channels, size = train_x.shape[1], (train_x.shape[2], train_x.shape[3])

    def cell_images(name: str, fraction: float, variant: str) -> tuple[Tensor, Tensor]:
        """A cell's training and test images: unmodified (references), the removal masks
        alone (mask-only control) or the images with the top pixels replaced."""
        if name == BASELINE:
            return train_x, test_x
        rank = rank_of(name)
        if variant == "mask_only":
            masks = removal_mask_images(rank, fraction, channels, size)
            return masks[: len(train_x)], masks[len(train_x) :]
        removed = removal_masks(rank, [fraction], "morf", size)[0].unsqueeze(1)
        x_all = replace_removed(all_x, removed, fill, config.replacement, seed)
        return x_all[: len(train_x)], x_all[len(train_x) :]

    base_setup = setup_hash(model, train_x, train_y, test_x, test_y, extra=BASELINE)
    fit_index, val_index = validation_split(len(train_x), config.validation, seed)
    network = network_fn(config, train_x.shape[1], config.recipe.num_classes, model_fn)

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
            if variant == "longer":
                recipe_cell.epochs *= config.longer_reference
            x_tr, x_te = cell_images(name, fraction, variant)
            split = (fit_index, val_index) if config.validation > 0 else None
            trained, correct = _retrain(x_tr, train_y, x_te, test_y, split, recipe_cell, network,
                                        device, progress)  # fmt: skip
            record = {
                "method": name,
                "variant": variant,
                "fraction": fraction,
                "seed": train_seed,
                "recipe_hash": recipe,
                "setup_hash": setup,
                "recipe": dataclasses.asdict(recipe_cell),
                "network": config.network if model_fn is None else "model_fn",
                "test_accuracy": trained.test_accuracy,
                "validation_accuracy": trained.validation_accuracy,
                "best_epoch": trained.best_epoch,
                "correct": "".join("1" if c else "0" for c in correct.tolist()),
                "history": [dataclasses.asdict(h) for h in trained.history],
                "wall_time_s": trained.wall_time_s,
            }
            if path is not None:
                store_json_cell(path, record, kind="roar-cell")
        records[(name, fraction, train_seed, variant)] = record
        bar.update(1)
        if on_cell is not None:
            on_cell(record)
        if config.convergence_tolerance is not None and len(records) == num_references:
            check_convergence(records, config)
    bar.close()
    return roar_result(
        labels, records, config, model_name, seed, recipe, method_options, num_classes, len(test_y)
    )


def _retrain(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    split: tuple[Tensor, Tensor] | None,
    recipe: TrainConfig,
    network: Callable[[], nn.Module],
    device: str | torch.device | None,
    progress: bool,
) -> tuple[Any, Tensor]:
    """Train a new network on one cell's images (the ``split`` (fit, validation) indices pick
    the best-validation checkpoint; None: the last epoch); returns the training result and
    which test images it classifies correctly, (N,) bool."""
    validation = None
    if split is not None:
        fit, held = split
        validation = (x_train[held], y_train[held])
        x_train, y_train = x_train[fit], y_train[fit]
    trained = train_model((x_train, y_train), (x_test, y_test), recipe, device=device,
                          progress=progress, model_fn=network, validation=validation)  # fmt: skip
    return trained, _correct(trained.model, x_test, y_test)


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
