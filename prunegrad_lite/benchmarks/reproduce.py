"""``reproduce``: run the three benchmarks on the embedded models and set our numbers beside the
authors' (what ``prunegrad-lite reproduce`` calls).

Models and data (all offline):

* ``fashion_mnist``: the shipped FashionResNet on the shipped Fashion-MNIST subset (10k train /
  2k test): sanity checks, pixel perturbation and ROAR;
* ``efficientnet_lite0``: the ImageNet EfficientNet-Lite0 on the 19 offline photographs of scikit-image,
  scikit-learn and matplotlib: sanity checks and pixel perturbation (ROAR needs an ImageNet training set,
  which is not offline).

Sizes come from a :class:`~.presets.Preset` (:mod:`.presets`): ``"full"`` (the default),
``"quick"`` (``--quick``: fewer images, one ROAR seed, fewer fractions and methods; minutes on a
CPU) and ``"smoke"``, which ``PRUNEGRAD_LITE_SMOKE=1`` selects instead of either: the quick preset
shrunk to a few images and one short epoch, the same code paths, for CI. Every preset number is
in :data:`PRESETS`.

The models and their images are loaded by :mod:`.setups`. PruneGrad's sparsity: the model's
calibrated default when its registry entry has one, else calibrated here by the spec's rule
(pruning changes the target probability by 15% on average,
:func:`~prunegrad_lite.calibrate_sparsity`) on the benchmark images; ``summary.md`` states it.

Outputs in ``out``: ``{benchmark}_{model}.png`` figures, ``*_curves.csv``, ``*_scores.csv`` and
``*.md`` tables, ``*.json`` results, ``sanity_{model}_maps.png``, ``summary.md`` and ``run.json``
(timings and settings). ``out/cache`` holds the ROAR maps and retrained cells and every finished
benchmark result, so an interrupted run resumes and a finished one is not recomputed.

Where the benchmarks' cells (ROAR's retrainings, pixel perturbation's methods, the sanity checks'
randomisation steps) run: ``executor="local"`` (default) in this process, ``"ray"`` as Ray tasks on
this machine or, with ``address``, a cluster (:mod:`.executor`, ``docs/distributed.md``); the
results files are the same either way, wall times aside.

Example
-------
>>> report = reproduce(benchmarks="pixel", models="fashion_mnist", quick=True, out="runs/quick")
>>> print(report.summary_path.read_text())
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prunegrad_lite.benchmarks.attribution_maps import check_methods
from prunegrad_lite.benchmarks.cache import cache_key, heal, load_result_cell, store_result_cell
from prunegrad_lite.benchmarks.executor import (
    CellFailure,
    CellsFailed,
    Executor,
    executor_for,
    raise_failures,
)
from prunegrad_lite.benchmarks.locks import release_all
from prunegrad_lite.benchmarks.pixel_perturbation import PixelPerturbationConfig, pixel_perturbation
from prunegrad_lite.benchmarks.plots import save_sanity_maps
from prunegrad_lite.benchmarks.presets import (
    BENCHMARKS,
    DEFAULT_METHODS,
    DEFAULT_MODELS,
    PRESETS,
    REPRODUCE_MODELS,
    SMOKE_ENV,
    Preset,
    roar_config,
    roar_cost,
    select_preset,
)
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.cache import setup_hash
from prunegrad_lite.benchmarks.roar import roar
from prunegrad_lite.benchmarks.sanity import SanityConfig, sanity_checks
from prunegrad_lite.benchmarks.setups import Setup, load_setup, prunegrad_sparsity
from prunegrad_lite.benchmarks.summary import write_summary
from prunegrad_lite.io import write_text
from prunegrad_lite.runtime import resolve_device, smoke_mode

__all__ = [
    "BENCHMARKS",
    "DEFAULT_METHODS",
    "DEFAULT_MODELS",
    "PRESETS",
    "REPRODUCE_MODELS",
    "SMOKE_ENV",
    "Preset",
    "ReproduceReport",
    "reproduce",
    "roar_config",
    "roar_cost",
    "select_preset",
    "smoke_mode",
]

_PRUNEGRAD_FAMILY = ("prunegrad", "prunegrad_random", "pruneint", "prunegrad_layer")


@dataclass
class ReproduceReport:
    """What :func:`reproduce` did: its results, timings and the files it wrote."""

    out_dir: Path
    preset: Preset
    results: dict[tuple[str, str], BenchmarkResult] = field(default_factory=dict)
    seconds: dict[str, float | None] = field(default_factory=dict)  # "bench/model" -> wall time
    sparsity: dict[str, float] = field(default_factory=dict)  # model -> PruneGrad sparsity
    notes: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)  # "benchmark/model" read from out/cache
    summary_path: Path | None = None


def _choice(
    value: str | Sequence[str], known: Sequence[str], what: str, every: Sequence[str] | None = None
) -> list[str]:
    values = [value] if isinstance(value, str) else list(value)
    if values == ["all"]:
        return list(every or known)
    unknown = [v for v in values if v not in known]
    if unknown or not values:
        raise ValueError(
            f"unknown {what} {unknown or values}; choose from {', '.join(known)} or all"
        )
    return list(dict.fromkeys(values))


def reproduce(
    benchmarks: str | Sequence[str] = "all",
    models: str | Sequence[str] = "all",
    methods: Sequence[str] | None = None,
    quick: bool = False,
    device: str | torch.device | None = None,
    out: str | os.PathLike = "runs/reproduce",
    seed: int = 0,
    progress: bool = True,
    weights: str | os.PathLike = "default",
    preset: Preset | str | None = None,
    imagenet_folder: str | os.PathLike | None = None,
    imagenet_images: int = 1000,
    executor: str | Executor = "local",
    address: str | None = None,
) -> ReproduceReport:
    """Run the benchmarks, write figures, tables and ``summary.md`` into ``out``.

    Parameters
    ----------
    benchmarks : "sanity", "pixel", "roar", a list of them, or "all" (default).
    models : "fashion_mnist", "efficientnet_lite0", "resnet50", "vgg16", a list, or "all"
        (default: the two offline models, fashion_mnist and efficientnet_lite0). ROAR runs on
        Fashion-MNIST only. The torchvision models need their ImageNet weights in torch.hub's
        cache (downloaded once, online).
    methods : attribution methods (default: the preset's, :data:`DEFAULT_METHODS` for "full"
        and "quick"); when given, they replace the preset's lists for every benchmark.
    quick : the "quick" preset instead of "full" (``PRUNEGRAD_LITE_SMOKE=1`` selects "smoke").
    device : None (CUDA when available, else CPU), "cpu", "cuda", ...
    out : output folder; ``out/cache`` holds what a rerun reuses.
    seed : seeds data subsets, rankings, the random control and the sanity re-initialisation.
    progress : tqdm progress bars.
    weights : the Fashion-MNIST checkpoint ("default": the shipped one, or a path).
    preset : a :class:`Preset` or a name in :data:`PRESETS` ("full", "quick", "smoke",
        "paper"); overrides ``quick`` (a name is still replaced by "smoke" in smoke mode).
    imagenet_folder : an ImageNet-style folder (``<class>/<image>``) to run the ImageNet models
        on instead of the offline photographs: the paper's scale on a GPU with your own data.
    imagenet_images : how many images to draw from it (seeded); default 1000.
    executor : where the benchmarks' cells run (:mod:`.executor`: ROAR's retrainings and maps,
        pixel perturbation's methods, the sanity checks' randomisation steps): "local" (default, here) or "ray"
        (each cell a Ray task; ``pip install prunegrad-lite[distributed]``), or an
        :class:`~.executor.Executor`. The results are the same either way; a cell that fails
        after its retries is named in :class:`~.executor.CellsFailed`, raised once every other
        benchmark has run (their results and the other cells are saved).
    address : the Ray cluster to use with ``executor="ray"`` (None: a local Ray instance).

    Example
    -------
    >>> reproduce(models="resnet50", benchmarks="pixel", imagenet_folder="~/imagenet/val",
    ...           imagenet_images=2000, device="cuda")   # the authors' pixel perturbation
    """
    if imagenet_images < 1:
        raise ValueError(f"imagenet_images must be positive, got {imagenet_images}")
    which = _choice(benchmarks, BENCHMARKS, "benchmark")
    model_names = _choice(models, REPRODUCE_MODELS, "model", DEFAULT_MODELS)
    chosen = check_methods(methods) if methods is not None else None
    if isinstance(preset, str):
        preset = select_preset(quick, preset)
    preset = preset or select_preset(quick)
    dev = resolve_device(device)
    out_dir = Path(out)
    cache = out_dir / "cache"
    heal(cache)  # unreadable cached files: named in a warning and deleted (cache.py)
    report = ReproduceReport(out_dir, preset)
    failures: list[CellFailure] = []
    t_run = time.perf_counter()
    with executor_for(executor, address, device=dev) as runner:
        _run_models(report, model_names, which, chosen, preset, dev, out_dir, cache, seed,
                    progress, weights, imagenet_folder, imagenet_images, runner, failures)  # fmt: skip
    report.seconds["total"] = round(time.perf_counter() - t_run, 1)
    run = {
        "preset": dataclasses.asdict(preset),
        "benchmarks": which,
        "models": model_names,
        "methods": None if chosen is None else list(chosen),
        "seed": seed,
        "device": str(dev),
        "executor": runner.name,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "seconds": report.seconds,
        "cached": report.cached,
        "sparsity": report.sparsity,
        "notes": report.notes,
        "failed_cells": [dataclasses.asdict(f) for f in failures],
    }
    write_text(out_dir / "run.json", json.dumps(run, indent=1) + "\n")
    # summary.md is rebuilt from the result files and run.json alone (benchmarks.summary)
    report.summary_path = write_summary(out_dir)
    raise_failures(failures)  # the failed cells with their errors, after everything else
    return report


def _run_models(
    report: ReproduceReport,
    model_names: list[str],
    which: list[str],
    chosen: dict[str, Any] | None,
    preset: Preset,
    dev: torch.device,
    out_dir: Path,
    cache: Path,
    seed: int,
    progress: bool,
    weights: str | os.PathLike,
    imagenet_folder: str | os.PathLike | None,
    imagenet_images: int,
    runner: Executor,
    failures: list[CellFailure],
) -> None:
    """Every benchmark on every model: each result read from the cache or computed."""
    for name in model_names:
        setup = load_setup(
            name, preset, dev, weights, seed, imagenet_folder, imagenet_images, cache
        )
        sparsity, how = prunegrad_sparsity(setup, preset)
        report.sparsity[name] = sparsity
        report.notes.append(f"{name}: PruneGrad sparsity {sparsity:.3f}, {how}.")
        if setup.train is None:
            where = "the offline photographs" if imagenet_folder is None else str(imagenet_folder)
            report.notes.append(f"{name}: {len(setup.images)} images from {where}.")
        options = {m: {"sparsity": sparsity} for m in _PRUNEGRAD_FAMILY}
        fingerprint = setup_hash(setup.model)
        for bench in which:
            if bench == "roar" and setup.train is None:
                report.notes.append(
                    f"{name}: ROAR skipped (it retrains on the training set; no ImageNet "
                    "training set is available offline)."
                )
                continue
            bench_methods = check_methods(
                list(chosen.values()) if chosen else _methods_for(bench, name, preset)
            )  # {name: class}
            source = [] if imagenet_folder is None else [str(imagenet_folder), imagenet_images]
            key = cache_key(
                bench,
                name,
                dataclasses.asdict(preset),
                list(bench_methods),
                seed,
                fingerprint,
                options,
                *source,
            )
            cached = cache / "results" / f"{bench}_{name}_{key}.json"
            t0 = time.perf_counter()
            result = load_result_cell(cached)  # validated (cache.py); None: compute, locked
            if result is not None:  # finished before: its time is the one it took then
                report.cached.append(f"{bench}/{name}")
            else:
                try:
                    result = _run(
                        bench,
                        setup,
                        bench_methods,
                        preset,
                        dev,
                        seed,
                        progress,
                        options,
                        cache,
                        runner,
                    )
                except CellsFailed as failed:  # its other cells are cached: go on, report it
                    release_all(("result",))  # this result is not written: free its lock
                    failures += failed.failures
                    report.notes.append(f"{name}: {bench} incomplete, {failed.failures[0].label}"
                                        f" and {len(failed.failures) - 1} more cells failed.")  # fmt: skip
                    continue
                result.settings["wall_time_s"] = round(time.perf_counter() - t0, 1)
                store_result_cell(cached, result)  # checksummed; releases the lock
            took = result.settings.get("wall_time_s")
            report.seconds[f"{bench}/{name}"] = took  # None: cached by an older version
            report.results[(bench, name)] = result
            result.save(out_dir)
            if bench == "sanity" and result.examples:
                save_sanity_maps(result, out_dir / f"sanity_{name}_maps.png")


def _methods_for(bench: str, model: str, preset: Preset) -> tuple[str, ...]:
    if bench == "roar":
        return preset.roar_methods
    if bench == "sanity" and model != "fashion_mnist" and preset.imagenet_sanity_methods:
        return preset.imagenet_sanity_methods
    return preset.methods


def _run(
    bench: str,
    setup: Setup,
    methods: dict[str, Any],  # name -> Attribution class, from check_methods
    preset: Preset,
    device: torch.device,
    seed: int,
    progress: bool,
    options: dict[str, dict[str, Any]],
    cache: Path,
    runner: Executor,
) -> BenchmarkResult:
    options = {m: o for m, o in options.items() if m in methods}
    classes = list(methods.values())
    small = setup.name == "fashion_mnist"  # 28x28 inputs: big batches on any device
    batch = 64 if small or device.type == "cuda" else 8
    common: dict[str, Any] = {  # every benchmark's keyword arguments
        "device": device,
        "seed": seed,
        "progress": progress,
        "method_options": options,
        "model_name": setup.name,
    }
    if bench == "pixel":
        config = PixelPerturbationConfig(
            replacement=tuple(preset.pixel_replacements),
            batch_size=batch,
            forward_batch=1000 if batch == 64 else 40,
        )
        return pixel_perturbation(setup.model, setup.images, classes, config, cache_dir=cache,
                                  executor=runner, **common)  # fmt: skip
    if bench == "sanity":
        config = SanityConfig(
            depth=preset.sanity_depth if small else preset.imagenet_sanity_depth,
            batch_size=batch,
            measures=tuple(preset.sanity_measures),
            inits=tuple(preset.sanity_inits),
            draws=preset.sanity_draws if small else preset.imagenet_sanity_draws,
            target=preset.sanity_target,
        )
        images = setup.sanity_images
        return sanity_checks(setup.model, images, classes, config, display=setup.display,
                             cache_dir=cache, executor=runner, **common)  # fmt: skip
    config = roar_config(preset, [m for m in methods])
    print(roar_cost(preset, list(methods), len(setup.train), len(setup.test)), flush=True)
    return roar(setup.model, setup.train, setup.test, classes, config, cache_dir=cache,
                executor=runner, **common)  # fmt: skip
