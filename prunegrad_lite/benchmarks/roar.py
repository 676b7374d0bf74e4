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
The run has three phases, each a list of independent cells
(:mod:`.roar_cells`) handed to an executor (:mod:`.executor`): the references, the maps of every
ranking, the grid. ``executor="local"`` (default) runs them here one after another; ``"ray"``
runs each as a Ray task, on this machine or a cluster (``docs/distributed.md``); the records are
the same either way, and the driver reads every finished cell back from the cache. Two
processes on the same ``cache_dir`` share the work: a cell (or a ranking's maps) that the other
process is computing is put at the end of its phase and read from the cache when it is done. With ``reproduce``, start the second process
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
from collections.abc import Callable, Sequence
from functools import partial
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
from prunegrad_lite.benchmarks.cache import locked_elsewhere, setup_hash
from prunegrad_lite.benchmarks.executor import (
    Cell,
    Executor,
    LocalExecutor,
    executor_for,
    for_cells,
    raise_failures,
)
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
from prunegrad_lite.benchmarks.roar_cells import (
    LOCK_KINDS,
    RanksSpec,
    RoarCellSpec,
    RoarData,
    cached_ranks,
    cached_record,
    ranks_cell,
    roar_cell,
)
from prunegrad_lite.benchmarks.roar_inputs import (
    mask_top_pixels,
    other_class_targets,
    removal_mask_images,
    validation_split,
)
from prunegrad_lite.benchmarks.roar_models import network_fn
from prunegrad_lite.benchmarks.roar_results import roar_result
from prunegrad_lite.runtime import resolve_device
from prunegrad_lite.training import tensor_pair

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
    executor: str | Executor | None = None,
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
    executor : where the cells run (:mod:`.executor`): "local" (default: here, one after
        another), "ray" (a local Ray instance) or an :class:`~.executor.Executor` (e.g.
        ``RayExecutor(address)`` for a cluster; left open). The references, then the maps of
        each ranking, then the grid; a cell that fails after its retries is named in
        :class:`~.executor.CellsFailed` once every other cell is done and cached.

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

    setups: dict[str, str] = {}
    ranks_specs: dict[str, RanksSpec] = {}
    # a Ray task asks for a GPU when the cells run on CUDA; Ray starts at its first cell. An
    # executor made here is closed on leaving the block, also when anything in it raised.
    with executor_for(executor, device=resolve_device(device)) as runner:
        local = isinstance(runner, LocalExecutor)  # cells in this process: its bars, its model
        for label, method, target, which in rankings:
            options = options_for(method_options, method)
            extra = {"method": method, "class": _qualname(classes[method]), "options": options}
            extra["seed"] = seed
            if which != "predicted":
                extra["target"] = which
            setups[label] = setup_hash(model, all_x, train_y, test_y, extra=extra)
            ranks_specs[label] = RanksSpec(label, classes[method], options, target,
                                           None if cache is None else str(cache), setups[label],
                                           config.batch_size, seed, progress and local, device)  # fmt: skip

        labels = [label for label, *_ in rankings]
        base_setup = setup_hash(model, train_x, train_y, test_x, test_y, extra=BASELINE)
        fit_index, val_index = validation_split(len(train_x), config.validation, seed)
        data = RoarData(
            train_x,
            train_y,
            test_x,
            test_y,
            fill,
            (fit_index, val_index) if config.validation > 0 else None,
            network_fn(config, train_x.shape[1], config.recipe.num_classes, model_fn),
            config.network if model_fn is None else "model_fn",
            config.replacement,
            seed,
            device,
            progress and local,  # a Ray worker's bars would only clutter its log
        )

        def spec(name: str, fraction: float, train_seed: int, variant: str) -> RoarCellSpec:
            setup = base_setup if name == BASELINE else setups[name]
            folder = name if variant == "roar" else f"{name}.{variant}"
            path = None if cache is None else roar_cell_path(cache, setup, folder, fraction,
                                                              train_seed, recipe)  # fmt: skip
            recipe_cell = dataclasses.replace(config.recipe, seed=train_seed)
            if variant == "longer":
                recipe_cell.epochs *= config.longer_reference
            where = None if path is None else str(path)
            return RoarCellSpec(
                name, variant, fraction, train_seed, where, setup, recipe, recipe_cell
            )

        # the references first, seed by seed: whether the recipe converges is known before any
        # map is computed and before the grid runs
        references = []
        for s in config.seeds:
            references += [spec(BASELINE, 0.0, s, "roar")] if config.baseline else []
            references += [spec(BASELINE, 0.0, s, "longer")] if config.longer_reference else []
        grid = [
            spec(m, f, s, "roar") for s in config.seeds for f in config.fractions for m in labels
        ]
        if config.mask_only:
            grid += [
                spec(m, f, s, "mask_only")
                for s in config.seeds
                for f in config.fractions
                for m in labels
                if m != "random"  # the random ranking's mask is independent of the image: chance
            ]
        maps_model = for_cells(runner, model)
        records: dict[tuple[str, float, int, str], dict[str, Any]] = {}
        bar = tqdm(total=len(references) + len(grid), desc="ROAR cells", disable=not progress)

        def done(cell: Cell, returned: dict[str, Any]) -> None:
            """A cell is done: its record is read back from the cache (the source of truth)."""
            cell_spec: RoarCellSpec = cell.args[0]
            record = cached_record(cell_spec)
            if record is None:  # no cache folder, or the driver does not see the workers' one
                record = returned
            records[(cell_spec.name, cell_spec.fraction, cell_spec.seed, cell_spec.variant)] = (
                record
            )
            bar.set_postfix(method=cell_spec.name, fraction=cell_spec.fraction, seed=cell_spec.seed)
            bar.update(1)
            if on_cell is not None:
                on_cell(record)

        def cells(specs: list[RoarCellSpec], ranks: dict[str, Tensor]) -> list[Cell]:
            return [
                Cell(
                    key=sp.path or f"{sp.name}/{sp.variant}/{sp.fraction}/{sp.seed}",
                    fn=roar_cell,
                    args=(sp,),
                    shared=(data, ranks.get(sp.name)),
                    label=f"ROAR {sp.name} {sp.variant} t={sp.fraction:g} seed {sp.seed}",
                    busy=_busy(sp.path),
                    locks=LOCK_KINDS,
                )
                for sp in specs
            ]

        try:
            _, failures = runner.run(cells(references, {}), done)
            if config.convergence_tolerance is not None and len(records) == len(references):
                check_convergence(records, config)
            # the maps of every ranking (one cell each; cached under cache_dir/maps), then the grid
            shape = (len(all_x), all_x.shape[-2] * all_x.shape[-1])
            needed = [ranks_specs[m] for m in dict.fromkeys(sp.name for sp in grid)]
            ranks_cells = [
                Cell(
                    key=str(r.path() or r.label),
                    fn=ranks_cell,
                    args=(r,),
                    shared=(maps_model, all_x),
                    label=f"maps {r.label}",
                    busy=_busy(r.path()),
                    locks=LOCK_KINDS,
                )
                for r in needed
            ]
            computed, failed = runner.run(ranks_cells)
            failures += failed
            ranks: dict[str, Tensor] = {}
            for c in ranks_cells:
                if c.key in computed:
                    r = c.args[0]
                    rank = cached_ranks(r, shape)
                    ranks[r.label] = computed[c.key] if rank is None else rank
            _, failed = runner.run(cells([sp for sp in grid if sp.name in ranks], ranks), done)
            failures += failed
        finally:
            bar.close()
    raise_failures(failures)  # every failed cell with its error; the others are cached
    order = [(sp.name, sp.fraction, sp.seed, sp.variant) for sp in references + grid]
    records = {key: records[key] for key in order}  # the cells' order, not the finishing order
    return roar_result(
        labels, records, config, model_name, seed, recipe, method_options, num_classes, len(test_y)
    )


def _busy(path: str | os.PathLike | None) -> Callable[[], bool] | None:
    """Probe: is another process computing the file at ``path`` (same cache folder)?"""
    return None if path is None else partial(locked_elsewhere, path)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _pair(data: Any, what: str) -> tuple[Tensor, Tensor]:
    images, labels = tensor_pair(data, what)  # checks the shapes
    if not len(images):
        raise ValueError(f"{what} holds no images")
    return images.detach().float().cpu(), labels.detach().long().cpu()
