"""``reproduce``: run the three benchmarks on the embedded models and set our numbers beside the
authors' (what ``prunegrad-lite reproduce`` calls).

Models and data (all offline):

* ``fashion_mnist``: the shipped FashionResNet on the shipped Fashion-MNIST subset (10k train /
  2k test): sanity checks, pixel perturbation and ROAR;
* ``efficientnet_lite0``: the ImageNet EfficientNet-Lite0 on the seven photographs of scikit-image
  and scikit-learn: sanity checks and pixel perturbation (ROAR needs an ImageNet training set,
  which is not offline).

Sizes come from a :class:`Preset`: ``"full"`` (the default), ``"quick"`` (``--quick``: fewer
images, one ROAR seed, fewer fractions and methods; minutes on a CPU) and ``"smoke"``, which
``PRUNEGRAD_LITE_SMOKE=1`` selects instead of either: the quick preset shrunk to a few images and
one short epoch, the same code paths, for CI. Every preset number is in :data:`PRESETS`.

PruneGrad's sparsity: the model's calibrated default when its registry entry has one, else
calibrated here by the spec's rule (pruning changes the target probability by 15% on average,
:func:`~prunegrad_lite.calibrate_sparsity`) on the benchmark images; ``summary.md`` states it.

Outputs in ``out``: ``{benchmark}_{model}.png`` figures, ``*_curves.csv``, ``*_scores.csv`` and
``*.md`` tables, ``*.json`` results, ``sanity_{model}_maps.png``, ``summary.md`` and ``run.json``
(timings and settings). ``out/cache`` holds the ROAR maps and retrained cells and every finished
benchmark result, so an interrupted run resumes and a finished one is not recomputed.

Example
-------
>>> report = reproduce(benchmarks="pixel", models="fashion_mnist", quick=True, out="runs/quick")
>>> print(report.summary_path.read_text())
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.attribution_maps import check_methods
from prunegrad_lite.benchmarks.pixel_perturbation import PixelPerturbationConfig, pixel_perturbation
from prunegrad_lite.benchmarks.cache import heal, load_result_cell, store_result_cell
from prunegrad_lite.benchmarks.results import BenchmarkResult, write_text
from prunegrad_lite.benchmarks.roar import RoarConfig, roar, setup_hash
from prunegrad_lite.benchmarks.sanity import SanityConfig, sanity_checks
from prunegrad_lite.benchmarks.summary import write_summary
from prunegrad_lite.device import resolve_device
from prunegrad_lite.teaching import SMOKE_ENV_VAR, smoke_mode
from prunegrad_lite.training import TrainConfig

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

SMOKE_ENV = SMOKE_ENV_VAR  # "PRUNEGRAD_LITE_SMOKE", shared with the notebooks (teaching.py)
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
_PRUNEGRAD_FAMILY = ("prunegrad", "prunegrad_random", "pruneint", "prunegrad_layer")


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
    sanity_inits: tuple[str, ...] = ("authors", "reset")  # re-initialisations (sanity checks)
    sanity_measures: tuple[str, ...] = ("spearman_abs", "spearman", "ssim", "hog")
    sanity_target: str = "original"  # class explained after randomisation (as Quantus)


PRESETS: dict[str, Preset] = {
    # ROAR in "full": the 15-epoch recipe that converges (batch 64, no flips; the measurements
    # are in roar.ROAR_RECIPE's comment) costs 1.5x the 10-epoch one, so the grid is 10 and 50%
    # and no Integrated Gradients: 78 retrainings, about 48 min on 2 idle cores (docs/deviations.md)
    "full": Preset(
        name="full",
        pixel_images=500,
        sanity_images=128,
        sanity_depth=None,
        roar_train=None,
        roar_test=None,
        roar_fractions=(0.1, 0.5),
        roar_seeds=(0, 1, 2),
        roar_epochs=15,
        roar_batch_size=64,
        roar_methods=(
            "gradient",
            "gradcam",
            "prunegrad",
            "random",
            "edge",
        ),
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
    ),
    "quick": Preset(
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
        roar_methods=("gradient", "prunegrad", "random", "edge"),
        photos=3,
        imagenet_sanity_methods=("gradient", "guided_backprop", "prunegrad", "edge"),
        imagenet_sanity_depth=1,
        calibration_images=200,
        roar_other_class=("prunegrad",),
        roar_longer=0,
        pixel_replacements=("mean", "noisy_linear"),
        sanity_draws=2,
    ),
    "smoke": Preset(
        name="smoke",
        pixel_images=16,
        sanity_images=4,
        sanity_depth=1,
        roar_train=64,
        roar_test=32,
        roar_fractions=(0.1, 0.5),
        roar_seeds=(0,),
        roar_epochs=1,
        roar_batch_size=64,
        roar_methods=("gradient", "prunegrad", "random", "edge"),
        photos=1,
        imagenet_sanity_methods=("gradient", "prunegrad", "edge"),
        imagenet_sanity_depth=1,
        calibration_images=16,
        methods=("gradient", "guided_backprop", "gradcam", "prunegrad", "random", "edge"),
        roar_other_class=("prunegrad",),
        roar_longer=2,
        pixel_replacements=("mean", "noisy_linear"),
        sanity_draws=2,
    ),
    # For a GPU and the user's CIFAR-10 (``--model cifar10_resnet8 --preset paper``): the
    # authors' ROAR grid and recipe (spec section 3, from their CVPR 2021 follow-up: CIFAR-10,
    # ResNet-8, Adam 1e-3, 50 epochs), 10..90% removed, ResNet-8 explained and retrained, 3
    # seeds instead of their one retraining per cell, the best-validation checkpoint of each.
    "paper": Preset(
        name="paper",
        pixel_images=1000,
        sanity_images=128,
        sanity_depth=None,
        roar_train=None,
        roar_test=None,
        roar_fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
        roar_seeds=(0, 1, 2),
        roar_epochs=50,
        roar_batch_size=128,
        roar_methods=(
            "gradient",
            "integrated_gradients",
            "guided_backprop",
            "gradcam",
            "prunegrad",
            "random",
            "edge",
        ),
        photos=None,
        imagenet_sanity_methods=None,
        imagenet_sanity_depth=2,
        calibration_images=500,
        roar_other_class=("prunegrad",),
        roar_network="resnet8",
        roar_lr=1e-3,
        roar_optimizer="adam",
        roar_schedule="constant",
        roar_longer=0,
        explained_epochs=30,
    ),
}


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


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:16]


@dataclass
class _Setup:
    """One model with its benchmark data."""

    name: str
    model: nn.Module
    images: Tensor  # (N, C, H, W) for pixel perturbation
    sanity_images: Tensor
    display: tuple[Sequence[float], Sequence[float]]
    train: Any = None  # ROAR data (Fashion-MNIST only)
    test: Any = None


def _load(
    name: str,
    preset: Preset,
    device: torch.device,
    weights: Any,
    seed: int,
    imagenet_folder: Any = None,
    imagenet_images: int = 1000,
    cache: Path | None = None,
) -> _Setup:
    from prunegrad_lite.data import load_dataset
    from prunegrad_lite.models import load_model, model_info

    if name == "fashion_mnist":
        model = load_model(name, device=device, weights=weights)
        test = load_dataset("fashion_mnist", "test")
        train = load_dataset("fashion_mnist", "train")
        roar_train = train if preset.roar_train is None else train.subset(preset.roar_train, seed)
        roar_test = test if preset.roar_test is None else test.subset(preset.roar_test, seed)
        return _Setup(
            name,
            model,
            test.subset(preset.pixel_images, seed).images,
            test.subset(preset.sanity_images, seed + 1).images,
            (test.mean, test.std),
            roar_train,
            roar_test,
        )
    if name == "cifar10_resnet8":
        return _load_cifar10_resnet8(preset, device, seed, cache)
    model = load_model(name, device=device)  # torchvision models: cached weights or an error
    images = _imagenet_images(name, preset, imagenet_folder, imagenet_images, seed)
    pre = model_info(name).preprocessing
    return _Setup(name, model, images, images, (pre.mean, pre.std))


def _load_cifar10_resnet8(
    preset: Preset, device: torch.device, seed: int, cache: Path | None
) -> _Setup:
    """The user's CIFAR-10 (``load_dataset("cifar10")``: an error saying where to put it when
    absent) and a ResNet-8 (FashionResNet(3, 10, 16)) trained on it with the package's recipe
    for ``preset.explained_epochs`` epochs (crop padding 4 and flips, best checkpoint on 10% of
    the training images held out), trained once and cached in ``cache/models``."""
    from prunegrad_lite.data import load_dataset
    from prunegrad_lite.models import FashionResNet
    from prunegrad_lite.training import load_checkpoint, save_checkpoint, train_model

    train = load_dataset("cifar10", "train")
    test = load_dataset("cifar10", "test")
    roar_train = train if preset.roar_train is None else train.subset(preset.roar_train, seed)
    roar_test = test if preset.roar_test is None else test.subset(preset.roar_test, seed)
    recipe = TrainConfig(epochs=preset.explained_epochs, crop_padding=4, width=16, seed=seed)
    key = _digest("cifar10_resnet8", dataclasses.asdict(recipe), len(train), len(test))
    path = None if cache is None else cache / "models" / f"cifar10_resnet8_{key}.pt"
    model = FashionResNet(3, 10, 16)
    if path is not None and path.is_file():
        model.load_state_dict(load_checkpoint(path).state_dict, strict=True)
    else:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        held = max(2, len(train) // 10)
        fit, val = order[held:], order[:held]
        result = train_model(
            (train.images[fit], train.labels[fit]),
            test,
            recipe,
            device=device,
            model_fn=lambda: FashionResNet(3, 10, 16),
            validation=(train.images[val], train.labels[val]),
        )
        model = result.model.cpu()
        if path is not None:
            save_checkpoint(model, path, {"test_accuracy": result.test_accuracy} | result.as_dict())
    model = model.to(device).eval()
    return _Setup(
        "cifar10_resnet8",
        model,
        test.subset(min(preset.pixel_images, len(test)), seed).images,
        test.subset(min(preset.sanity_images, len(test)), seed + 1).images,
        (test.mean, test.std),
        roar_train,
        roar_test,
    )


def _imagenet_images(name: str, preset: Preset, folder: Any, count: int, seed: int) -> Tensor:
    """The photographs (offline), or ``count`` images drawn (seeded) from an ImageNet folder."""
    from prunegrad_lite.data import PHOTOS, load_image_folder, load_photos
    from prunegrad_lite.models import model_info

    style = model_info(name).preprocessing.style
    if folder is None:
        names = list(PHOTOS)[: preset.photos] if preset.photos is not None else None
        return load_photos(names, preprocess=style)[0]
    dataset = load_image_folder(folder, preprocess=style)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    picked = order[: min(count, len(dataset))].sort().values.tolist()
    return torch.stack([dataset[i][0] for i in picked])  # decoding files: one at a time


def _sparsity(setup: _Setup, preset: Preset) -> tuple[float, str]:
    from prunegrad_lite.attribution.prunegrad import calibrate_sparsity
    from prunegrad_lite.models import model_info

    fixed = None if setup.name == "cifar10_resnet8" else model_info(setup.name).default_sparsity
    if fixed is not None:
        return float(fixed), "the model's calibrated default"
    x = setup.images[: preset.calibration_images].to(next(setup.model.parameters()).device)
    cal = calibrate_sparsity(setup.model, x)
    sparsity, change, extra = cal.sparsity, cal.change, ""
    if sparsity == 0.0:  # no pruning is not PruneGrad: take the smallest sparsity reaching 15%
        reaching = [(s, c) for s, c in cal.evaluated if s > 0 and c >= cal.target_change]
        if reaching:
            sparsity, change = min(reaching)
            extra = (
                "; the change jumps past the target at the smallest sparsity tried (ties at "
                "score 0 are pruned together), so the smallest sparsity reaching it is used "
                "instead of 0, which would be the plain gradient"
            )
    return sparsity, (
        f"calibrated here on {len(x)} images: pruning changes the target probability by "
        f"{change:.3f} on average (target {cal.target_change}){extra}"
    )


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
        on instead of the seven photographs: the paper's scale on a GPU with your own data.
    imagenet_images : how many images to draw from it (seeded); default 1000.

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
    t_run = time.perf_counter()
    for name in model_names:
        setup = _load(name, preset, dev, weights, seed, imagenet_folder, imagenet_images, cache)
        sparsity, how = _sparsity(setup, preset)
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
            key = _digest(
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
                )
                result.settings["wall_time_s"] = round(time.perf_counter() - t0, 1)
                store_result_cell(cached, result)  # checksummed; releases the lock
            took = result.settings.get("wall_time_s")
            report.seconds[f"{bench}/{name}"] = took  # None: cached by an older version
            report.results[(bench, name)] = result
            result.save(out_dir)
            if bench == "sanity" and result.examples:
                _save_sanity_maps(result, out_dir / f"sanity_{name}_maps.png")
    report.seconds["total"] = round(time.perf_counter() - t_run, 1)
    run = {
        "preset": dataclasses.asdict(preset),
        "benchmarks": which,
        "models": model_names,
        "methods": None if chosen is None else list(chosen),
        "seed": seed,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "seconds": report.seconds,
        "cached": report.cached,
        "sparsity": report.sparsity,
        "notes": report.notes,
    }
    write_text(out_dir / "run.json", json.dumps(run, indent=1) + "\n")
    # summary.md is rebuilt from the result files and run.json alone (benchmarks.summary)
    report.summary_path = write_summary(out_dir)
    return report


def _methods_for(bench: str, model: str, preset: Preset) -> tuple[str, ...]:
    if bench == "roar":
        return preset.roar_methods
    if bench == "sanity" and model != "fashion_mnist" and preset.imagenet_sanity_methods:
        return preset.imagenet_sanity_methods
    return preset.methods


def _run(
    bench: str,
    setup: _Setup,
    methods: dict[str, Any],  # name -> Attribution class, from check_methods
    preset: Preset,
    device: torch.device,
    seed: int,
    progress: bool,
    options: dict[str, dict[str, Any]],
    cache: Path,
) -> BenchmarkResult:
    options = {m: o for m, o in options.items() if m in methods}
    classes = list(methods.values())
    small = setup.name == "fashion_mnist"  # 28x28 inputs: big batches on any device
    big_batches = small or device.type == "cuda"
    if bench == "pixel":
        config = PixelPerturbationConfig(
            replacement=tuple(preset.pixel_replacements),
            batch_size=64 if big_batches else 8,
            forward_batch=1000 if big_batches else 40,
        )
        return pixel_perturbation(
            setup.model,
            setup.images,
            classes,
            config,
            device=device,
            seed=seed,
            progress=progress,
            method_options=options,
            model_name=setup.name,
        )
    if bench == "sanity":
        config = SanityConfig(
            depth=preset.sanity_depth if small else preset.imagenet_sanity_depth,
            batch_size=64 if big_batches else 8,
            measures=tuple(preset.sanity_measures),
            inits=tuple(preset.sanity_inits),
            draws=preset.sanity_draws,
            target=preset.sanity_target,
        )
        return sanity_checks(
            setup.model,
            setup.sanity_images,
            classes,
            config,
            device=device,
            seed=seed,
            progress=progress,
            method_options=options,
            display=setup.display,
            model_name=setup.name,
        )
    config = roar_config(preset, [m for m in methods])
    print(roar_cost(preset, list(methods), len(setup.train), len(setup.test)), flush=True)
    return roar(
        setup.model,
        setup.train,
        setup.test,
        classes,
        config,
        cache_dir=cache,
        device=device,
        seed=seed,
        progress=progress,
        method_options=options,
        model_name=setup.name,
    )


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


def _save_sanity_maps(result: BenchmarkResult, path: Path) -> None:
    import matplotlib.pyplot as plt

    from prunegrad_lite.benchmarks.plots import plot_sanity_maps
    from prunegrad_lite.training import atomic_write

    fig = plot_sanity_maps(result)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


def _settings_line(result: BenchmarkResult) -> str:
    """One line on a result's protocol; :mod:`.summary` uses its ROAR part."""
    s = result.settings
    if result.benchmark == "pixel":
        return (
            f"{s['num_images']} images, fractions {s['fractions'][0]:g}..{s['fractions'][-1]:g}"
            f", replacement {s['replacement']!r} (0 in normalised space = the normalisation "
            "mean colour)."
        )
    if result.benchmark == "roar":
        return roar_settings_text(result)
    stages = [st["name"] for st in s["stages"]]
    text = (
        f"{s['num_images']} images, {len(stages)} stages from the logits down "
        f"({', '.join(stages)}), weights re-drawn from N(0, {s['init_std']}^2); scores: "
        "Spearman |map| etc. after the top stage (@top), after all stages (@all), mean "
        "over independent stages (@independent)."
    )
    cascading = (s.get("constant_maps") or {}).get("cascading", {})
    became = {m: c[-1] for m, c in cascading.items() if c and c[-1] > c[0]}
    if became:
        value = s.get("constant_similarity")
        text += (
            " Maps that became constant after all stages (their rank correlation is undefined; "
            + (f"counted as {value:g}" if value is not None else "left out of the mean")
            + "): "
            + ", ".join(f"{m} {c} of {s['num_images']}" for m, c in became.items())
            + "."
        )
    return text


def _mean_text(values: Sequence[float] | None) -> str:
    if not values:
        return "not run"
    v = torch.tensor(values, dtype=torch.float64)
    spread = f" ± {float(v.std()):.3f}" if len(v) > 1 else ""
    return f"{float(v.mean()):.3f}{spread} (seeds: {', '.join(f'{a:.3f}' for a in values)})"


def roar_settings_text(result: BenchmarkResult) -> str:
    """The ROAR protocol as run, its convergence check and its comparisons (markdown)."""
    s = result.settings
    r = s["recipe"]
    network = s.get("network", "fashion_resnet")
    text = (
        f"Fractions {s['fractions']}, training seeds {s['seeds']}; every cell retrains "
        f"**{network}** (width {r['width']}) from scratch: {r['optimizer']}, lr {r['lr']}, "
        f"{r['schedule']}, batch {r['batch_size']}, {r['epochs']} epochs, the checkpoint with "
        f"the best accuracy on {s.get('validation', 0):.0%} of the training images held out "
        f"(never the test set); replacement: {s['fill']}. The maps that rank the pixels are "
        f"the explained model's ({result.model}), for the class it predicts."
    )
    if s.get("reference_accuracy"):
        text += (
            f"\n\n**Convergence of the recipe.** Reference accuracy (unmodified images): "
            f"{_mean_text(s['reference_accuracy'])}"
        )
        longer = s.get("reference_accuracy_longer")
        if longer:
            gap = float(torch.tensor(longer).mean() - torch.tensor(s["reference_accuracy"]).mean())
            text += (
                f"; the same recipe trained {s['longer_reference']}x longer: "
                f"{_mean_text(longer)}, a gap of {100 * gap:.1f} points "
                f"({'within' if abs(gap) <= 0.015 else 'NOT within'} the 1.5 points required)"
            )
        if s.get("binomial_se") is not None:
            text += (
                f". One cell's binomial standard error on {s['num_test']} test images: "
                f"{s['binomial_se']:.4f}"
            )
        text += "."
    if s.get("mask_only"):
        text += (
            '\n\n`mask_only@t` (Rong et al. 2022, ICML, "A Consistent and Efficient '
            'Evaluation Strategy for Attribution Methods"; not in the paper): the accuracy of '
            "a network trained with the same recipe on the removal mask alone (1 where a pixel "
            f"is replaced, 0 elsewhere); chance is {s['chance']:.2f}. Well above chance, the "
            "mask itself tells the retrained network the class, and ROAR's accuracy for that "
            "ranking measures the leak as much as what was removed. The random ranking's mask "
            "is independent of the image (chance by construction) and is not trained."
        )
    if s.get("other_class"):
        text += (
            " `{m}@other_class`: the ranking of the same method's map for a random class the "
            "model did **not** predict: it keeps the method's silhouette but not the "
            "predicted label, so a mask-only accuracy that drops to near chance for it "
            "points to label leakage, one that stays high to silhouette leakage (as for the "
            "`edge` control, whose map ignores the model)."
        )
    rows = s.get("comparisons") or []
    if rows:
        text += (
            "\n\n**Paired differences** (a - b of per-image correctness, mean over seeds x "
            "test images, 95% crossed bootstrap interval over seeds and images; claim: a "
            "lower, i.e. removing a's pixels hurts more; `area`: over all fractions):\n\n"
            "| a | b | variant | at | a - b [95% interval] | verdict (a lower) |\n"
            "|---|---|---|---|---|---|\n"
        )
        text += "\n".join(
            f"| {c['a']} | {c['b']} | {c['variant']} | {c['at']} | {c['difference']:+.3f} "
            f"[{c['low']:+.3f}, {c['high']:+.3f}] | {c['verdict']} |"
            for c in rows
        )
    return text


# --------------------------------------------------------------------------------------------------
# The command line: ``prunegrad-lite reproduce`` (registered in prunegrad_lite/cli.py)
# --------------------------------------------------------------------------------------------------

HELP = "run the three benchmarks and write figures, tables and summary.md beside the paper's"


def add_arguments(parser: Any) -> None:
    """The ``reproduce`` options on an ``argparse`` parser."""
    parser.add_argument(
        "--benchmark",
        nargs="+",
        choices=(*BENCHMARKS, "all"),
        default=["all"],
        help="one or more benchmarks (default: all)",
    )
    parser.add_argument(
        "--model",
        choices=(*REPRODUCE_MODELS, "all"),
        default="all",
        help="default: all = fashion_mnist and efficientnet_lite0 (offline); ROAR runs on "
        "fashion_mnist and cifar10_resnet8 (needs CIFAR-10 in the data folder; trains the "
        "explained ResNet-8 once); resnet50 and vgg16 need torchvision's cached ImageNet weights",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help="attribution methods, space or comma separated (default: the preset's: "
        + ", ".join(DEFAULT_METHODS)
        + "; ROAR: "
        + ", ".join(PRESETS["full"].roar_methods)
        + ")",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the quick preset (minutes on a CPU); {SMOKE_ENV}=1 selects the smoke preset",
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help="full (default), quick, smoke, or paper (the authors' ROAR grid: use with "
        "--model cifar10_resnet8 --benchmark roar on a GPU with CIFAR-10 in the data folder)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:0 (default: auto)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/reproduce"), help="output folder (cache inside)"
    )
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument(
        "--weights",
        default="default",
        help="Fashion-MNIST checkpoint (default: the shipped data/fashion_resnet.pt)",
    )
    parser.add_argument(
        "--imagenet-folder",
        type=Path,
        default=None,
        help="ImageNet-style folder (<class>/<image>) for the ImageNet models instead of the "
        "seven offline photographs",
    )
    parser.add_argument(
        "--imagenet-images", type=int, default=1000, help="images drawn from it (default 1000)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_cli(args: Any) -> int:
    """Run ``reproduce`` from parsed arguments; print where the summary is; return 0."""
    methods = None
    if args.methods is not None:
        methods = [m for item in args.methods for m in item.split(",") if m]
    report = reproduce(
        benchmarks=args.benchmark,
        models=args.model,
        methods=methods,
        quick=args.quick,
        preset=getattr(args, "preset", None),
        device=args.device,
        out=args.out,
        seed=args.seed,
        progress=not args.no_progress,
        weights=args.weights,
        imagenet_folder=args.imagenet_folder,
        imagenet_images=args.imagenet_images,
    )
    print(f"preset {report.preset.name}: {report.seconds.get('total', 0):.0f} s")
    for note in report.notes:
        print(f"  {note}")
    print(f"wrote {report.summary_path} and the figures and tables next to it")
    return 0
