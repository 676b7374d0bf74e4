"""Sanity checks (Adebayo et al. 2018): does the map change when the model's weights are destroyed?

Protocol (spec section 3, fixed before looking at results):

* the layers that hold parameters are found in forward order and grouped into **stages**
  (:func:`randomisation_stages`): by default each convolution or linear layer with the
  normalisation layers that follow it; with ``depth=d`` the modules that share the first ``d``
  parts of their name (a residual block, an EfficientNet block);
* **cascading**: on a deep copy of the model, stages are re-initialised one after another from
  the logits down to the first convolution, and the maps recomputed after each; **independent**:
  one stage at a time on a fresh copy. The caller's model is never touched;
* re-initialisation: every weight and bias of the stage (BatchNorm's too) is drawn from
  N(0, 0.1**2) (std 0.1); BatchNorm running statistics are kept. Draws come from a
  ``torch.Generator`` seeded by ``seed`` and the stage index, so both variants give a stage the
  same new weights;
* maps are recomputed for the class the *original* model predicts;
* similarity to the original map per image (:mod:`~.similarity`): Spearman on ``max_c |A_c|``
  and on the signed map, SSIM (window 5) on ``max_c |A_c|`` / max, optionally HOG; averaged
  over images with the sample std. A method passes when the similarity falls quickly;
* a randomised map can become constant (PruneGrad at high sparsity on a random network can
  prune every neuron of a layer on the path to the input, giving an all-zero map). Its rank
  correlation is undefined (NaN in SciPy); it counts as 0 (``constant_similarity``), since a
  constant map keeps none of the original's ranking, and the number of such maps per method,
  variant and stage is written to ``settings["constant_maps"]``.

Example
-------
>>> result = sanity_checks(model, test.images[:200], ["gradient", "guided_backprop", "edge"])
>>> result.score("guided_backprop", "spearman_abs@top").mean     # stays high: fails
>>> result.save("runs/sanity")
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
from prunegrad_lite.benchmarks.results import BenchmarkResult, CurvePoint, Score, mean_std
from prunegrad_lite.benchmarks.similarity import SIMILARITIES, constant_maps, map_similarities
from prunegrad_lite.device import model_device

__all__ = [
    "VARIANTS",
    "SanityConfig",
    "Stage",
    "randomisation_stages",
    "randomise_stage_",
    "sanity_checks",
]

VARIANTS = ("cascading", "independent")
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Stage:
    """One randomisation stage: a name and the modules (qualified names) re-initialised."""

    name: str
    modules: tuple[str, ...]


@dataclass(frozen=True)
class SanityConfig:
    """The sanity-check protocol; defaults follow Adebayo et al. as the spec states them."""

    variants: tuple[str, ...] = VARIANTS  # "cascading" and/or "independent"
    measures: tuple[str, ...] = ("spearman_abs", "spearman", "ssim")  # add "hog" for HOG
    init_std: float = 0.1  # new weights and biases ~ N(0, init_std**2)
    depth: int | None = None  # None: one stage per conv/linear (+ its norm); d: group names
    batch_size: int = 64  # images per attribution call
    example_images: int = 1  # images whose maps are kept for the example figure
    # Spearman/HOG of a randomised map that has become constant (e.g. every path to the input
    # pruned or dead): undefined, counted as this value (0: it keeps none of the original's
    # ranking); None leaves such images out of the mean (NaN). Counts are in the settings.
    constant_similarity: float | None = 0.0

    def __post_init__(self) -> None:
        variants = tuple(dict.fromkeys(self.variants))
        if not variants or any(v not in VARIANTS for v in variants):
            raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {variants}")
        object.__setattr__(self, "variants", variants)
        measures = tuple(dict.fromkeys(self.measures))
        if not measures or any(m not in SIMILARITIES for m in measures):
            raise ValueError(f"measures must be a non-empty subset of {SIMILARITIES}")
        object.__setattr__(self, "measures", measures)
        if not self.init_std > 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be None or >= 1, got {self.depth}")
        if self.batch_size < 1 or self.example_images < 0:
            raise ValueError("batch_size must be >= 1 and example_images >= 0")
        c = self.constant_similarity
        if c is not None and not -1.0 <= c <= 1.0:
            raise ValueError(f"constant_similarity must be None or in [-1, 1], got {c}")


def _forward_order(model: nn.Module, example: Tensor) -> list[str]:
    """Names of the modules with their own parameters, in the order a forward pass calls them."""
    owners = {
        module: name
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    }
    order: list[str] = []
    handles = []
    try:
        for module, name in owners.items():
            handles.append(
                module.register_forward_pre_hook(
                    lambda m, args, name=name: order.append(name) if name not in order else None
                )
            )
        with torch.no_grad():
            model(example.to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return order


def randomisation_stages(
    model: nn.Module, example: Tensor, depth: int | None = None
) -> list[Stage]:
    """The stages the sanity checks re-initialise, **from the logits down** to the first layer.

    Parameters
    ----------
    model : the network (one forward pass on ``example`` finds the order; hooks are removed).
    example : one input batch, e.g. ``images[:1]``.
    depth : None (default): each module with parameters is a stage, normalisation layers
        joining the layer before them; an int d: consecutive modules whose names share the first
        d dotted parts form one stage (``depth=1`` on a ResNet: stem, layer1, ..., fc).

    Example
    -------
    >>> [s.name for s in randomisation_stages(FashionResNet(), torch.zeros(1, 1, 28, 28), 1)]
    ['fc', 'layer3', 'layer2', 'layer1', 'conv1']
    """
    modules = dict(model.named_modules())
    groups: list[tuple[str, list[str]]] = []
    for name in _forward_order(model, example):
        key = name if depth is None else ".".join(name.split(".")[:depth])
        joins_previous = groups and (
            isinstance(modules[name], _NORMS) or (depth is not None and groups[-1][0] == key)
        )
        if joins_previous:
            groups[-1][1].append(name)
        else:
            groups.append((key, [name]))
    if not groups:
        raise ValueError("the model has no parameters to randomise")
    return [Stage(key, tuple(names)) for key, names in reversed(groups)]


@torch.no_grad()
def randomise_stage_(
    model: nn.Module, stage: Stage, generator: torch.Generator, std: float = 0.1
) -> None:
    """Re-initialise, in place, every parameter of the stage's modules from N(0, std**2).

    Buffers (BatchNorm running statistics) are kept. Values are drawn on the CPU from
    ``generator`` and copied, so a seed gives the same weights on every device.
    """
    modules = dict(model.named_modules())
    for name in stage.modules:
        for param in modules[name].parameters(recurse=False):
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_(values * std)


def _stage_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + index)


def _example_columns(num_stages: int, most: int = 4) -> list[int]:
    """Stage steps shown in the example figure: evenly spaced, the first and the last included."""
    if num_stages <= most:
        return list(range(1, num_stages + 1))
    picks = torch.linspace(1, num_stages, most).round().long().tolist()
    return list(dict.fromkeys(picks))


def sanity_checks(
    model: nn.Module,
    images: Tensor,
    methods: MethodLike | Sequence[MethodLike],
    config: SanityConfig | None = None,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
    method_options: MethodOptions | None = None,
    display: tuple[Sequence[float], Sequence[float]] | None = None,
    model_name: str = "model",
) -> BenchmarkResult:
    """Run the cascading and independent randomisation checks for every method.

    Parameters
    ----------
    model : a classifier in eval mode; it is deep-copied and never modified.
    images : (N, C, H, W) normalised inputs.
    methods : names of :data:`~prunegrad_lite.METHODS` or ``Attribution`` subclasses.
    config : the protocol (default :class:`SanityConfig`: both variants, both Spearman
        correlations and SSIM, N(0, 0.1**2) re-initialisation, one stage per layer).
    device : where to run (None: CUDA when available, else CPU).
    seed : seeds the new weights (and the random control); default 0.
    progress : tqdm progress bars.
    method_options : ``{method: {option: value}}`` for the methods' constructors.
    display : ``(mean, std)`` of the normalisation in [0, 1] pixel units, to draw the example
        images; None: the example figure shows the normalised input as it is.
    model_name : the name written into the results.

    Curves: ``(measure, variant)`` per method along the stages, step 0 the original model.
    Scores: ``{measure}@top`` (cascading, after the top stage), ``{measure}@all`` (cascading,
    after every stage) and ``{measure}@independent`` (independent, mean over stages). Lower
    similarity is better (the map depends on the weights).
    """
    config = config or SanityConfig()
    classes = check_methods(methods)
    names = list(classes)
    check_options(method_options, names)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty (N, C, H, W) batch, got {tuple(images.shape)}"
        )
    base = copy.deepcopy(on_device(model, device)).eval()  # the caller's model is never touched
    images = images.detach().float().cpu()
    target = predict(base, images, config.batch_size).argmax(1)  # (N,) original predictions
    stages = randomisation_stages(base, images[:1], config.depth)
    labels = ["original", *(s.name for s in stages)]

    def maps_of(net: nn.Module, name: str) -> Tensor:
        return compute_maps(
            net,
            images,
            classes[name],
            options=options_for(method_options, name),
            target=target,
            batch_size=config.batch_size,
            seed=seed,
            progress=False,
        )

    original = {name: maps_of(base, name) for name in names}
    # sims[variant][method][step] = {measure: (N,)}
    sims: dict[str, dict[str, list[dict[str, Tensor]]]] = {}
    shown = _example_columns(len(stages))
    k = min(config.example_images, len(images))
    example_maps: dict[str, list[Tensor]] = {"original": [original[n][:k] for n in names]}
    total = len(config.variants) * len(stages)
    bar = tqdm(total=total, desc="sanity checks", disable=not progress)
    constant: dict[str, dict[str, list[int]]] = {}  # variant -> method -> count per step

    def similarities(name: str, maps: Tensor) -> dict[str, Tensor]:
        return map_similarities(
            original[name], maps, config.measures, constant_value=config.constant_similarity
        )

    for variant in config.variants:
        per_method = {n: [similarities(n, original[n])] for n in names}
        constant[variant] = {n: [int(constant_maps(original[n]).sum())] for n in names}
        net = copy.deepcopy(base)
        for i, stage in enumerate(stages):
            if variant == "independent":
                net = copy.deepcopy(base)
            randomise_stage_(net, stage, _stage_generator(seed, i), config.init_std)
            bar.set_postfix(variant=variant, stage=stage.name)
            for name in names:
                maps = maps_of(net, name)
                per_method[name].append(similarities(name, maps))
                constant[variant][name].append(int(constant_maps(maps).sum()))
                if variant == "cascading" and i + 1 in shown and k:
                    example_maps.setdefault(f"→ {stage.name}", []).append(maps[:k])
            bar.update()
        sims[variant] = per_method
    bar.close()

    curves: list[CurvePoint] = []
    scores: list[Score] = []
    for variant, per_method in sims.items():
        for name, steps in per_method.items():
            for measure in config.measures:
                values = torch.stack([s[measure] for s in steps])  # (S+1, N)
                m, sd, n = mean_std(values, dim=1)
                for step in range(len(steps)):
                    curves.append(
                        CurvePoint(
                            name,
                            measure,
                            variant,
                            step,
                            float(step),
                            labels[step],
                            float(m[step]),
                            float(sd[step]),
                            int(n[step]),
                        )
                    )
                if variant == "cascading":
                    for tag, step in (("top", 1), ("all", len(steps) - 1)):
                        tm, ts, tn = mean_std(values[step])
                        scores.append(
                            Score(name, f"{measure}@{tag}", float(tm), float(ts), int(tn), "lower")
                        )
                else:  # per image, the mean over the independently randomised stages
                    im, isd, inn = mean_std(values[1:].nanmean(0))
                    scores.append(
                        Score(
                            name, f"{measure}@independent", float(im), float(isd), int(inn), "lower"
                        )
                    )
    settings: dict[str, Any] = {
        **asdict(config),
        "num_images": len(images),
        "seed": seed,
        "stages": [asdict(s) for s in stages],
        "target": "the class the original model predicts",
        "constant_maps": constant,  # variant -> method -> constant maps per step (0: original)
        "method_options": describe_options(method_options),
    }
    examples: dict[str, Any] = {}
    if k:
        examples = {
            "images": images[:k],
            "methods": names,
            "maps": {col: torch.stack(v, 1) for col, v in example_maps.items()},  # (k, M, C, H, W)
            "display": display,
        }
    return BenchmarkResult("sanity", model_name, names, curves, scores, settings, examples)
