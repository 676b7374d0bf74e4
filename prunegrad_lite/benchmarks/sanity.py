"""Sanity checks (Adebayo et al. 2018): does the map change when the model's weights are destroyed?

Protocol (spec section 3, fixed before looking at results):

* the layers that hold parameters are found in forward order and grouped into **stages**
  (:func:`randomisation_stages`): by default each convolution or linear layer with the
  normalisation layers that follow it; with ``depth=d`` the modules that share the first ``d``
  parts of their name (a residual block, an EfficientNet block);
* **cascading**: on a deep copy of the model, stages are re-initialised one after another from
  the logits down to the first convolution, and the maps recomputed after each; **independent**:
  one stage at a time on a fresh copy. The caller's model is never touched;
* re-initialisation (``inits``), two of them:

  - ``"authors"`` (default, the authors' code): every weight and bias of the stage (BatchNorm's
    gamma and beta too) is drawn from N(0, 0.1**2) (std ``init_std``); BatchNorm running
    statistics are kept. Drawing gamma from N(0, 0.01) shrinks a layer's output about tenfold,
    which matters for methods with a global threshold (PruneGrad), see "constant maps" below;
  - ``"reset"`` (Adebayo et al.'s per-variable initialisers; Quantus's ``reset_parameters()``):
    each module's own ``reset_parameters()`` (a convolution's Kaiming-uniform, a BatchNorm's
    gamma 1, beta 0 **and** running statistics reset to mean 0, variance 1).

  The first init's curves have the variants ``"cascading"``/``"independent"``, the others'
  ``"cascading_reset"``/``"independent_reset"``;
* **weight draws** (``draws``): each randomisation is repeated with ``draws`` independent draws
  of the new weights; draw d of stage i comes from a generator seeded by ``seed``, i and d (draw
  0 is the single draw of earlier versions), so both variants give a stage the same weights.
  Every per-image value is stored per draw (``units``: a (draws, N) table per point), and the
  intervals of the paired comparisons cover draws and images (crossed bootstrap, :mod:`.stats`);
* the explained class after randomisation (``target``): ``"original"`` (default, as Quantus):
  the class the original model predicts; ``"randomised"`` (as Adebayo et al. and the authors'
  code): the randomised model's own prediction, recomputed after every stage;
* similarity to the original map per image (:mod:`~.similarity`): Spearman on ``max_c |A_c|``
  and on the signed map, SSIM (window 5) on ``max_c |A_c|`` / max, optionally HOG; averaged
  over draws and images with the sample std. A method passes when the similarity falls quickly;
* **constant maps**: a randomised map can become constant (PruneGrad's global threshold on a
  randomised network can prune every neuron of a layer on the path to the input, giving an
  all-zero map). Its rank correlation is undefined (NaN in SciPy). Every correlation measure is
  reported twice: ``{measure}`` counts a map that became constant as ``constant_similarity``
  (default 0, "keeps none of the original's ranking", the benchmark's earlier convention) and
  ``{measure}_defined`` leaves such images out. A constant map is not evidence that a method is
  sensitive to the weights, so a pass that rests on constant maps is an artefact; the counts
  are in metric ``"constant"`` (per draw and image, 1 for a constant map) and summed over draws
  in ``settings["constant_maps"]`` (variant -> method -> count per step).

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
from prunegrad_lite.runtime import model_device

__all__ = [
    "VARIANTS",
    "SanityConfig",
    "Stage",
    "randomisation_stages",
    "randomise_stage_",
    "reset_stage_",
    "sanity_checks",
]

VARIANTS = ("cascading", "independent")
INITS = ("authors", "reset")
TARGETS = ("original", "randomised")
#: measures whose value is undefined for a constant map (reported with and without those maps)
CORRELATIONS = ("spearman_abs", "spearman", "hog")
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
    init_std: float = 0.1  # "authors" init: new weights and biases ~ N(0, init_std**2)
    inits: tuple[str, ...] = ("authors",)  # "authors" (N(0, init_std^2)) and/or "reset"
    draws: int = 1  # independent draws of the new weights per randomisation
    target: str = "original"  # class explained after randomisation: "original" / "randomised"
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
        inits = tuple(dict.fromkeys(self.inits))
        if not inits or any(i not in INITS for i in inits):
            raise ValueError(f"inits must be a non-empty subset of {INITS}, got {inits}")
        object.__setattr__(self, "inits", inits)
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
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


def reset_stage_(model: nn.Module, stage: Stage, generator: torch.Generator) -> None:
    """Re-initialise, in place, the stage's modules with their own ``reset_parameters()``.

    A convolution or linear layer gets PyTorch's default (Kaiming-uniform) initialisation, a
    BatchNorm gamma 1, beta 0 and its running statistics reset (mean 0, variance 1). The draws
    are made on a CPU copy of each module with the global RNG seeded from ``generator`` inside
    ``torch.random.fork_rng`` (the caller's RNG state is left as it was), so a seed gives the same
    weights on every device.
    """
    modules = dict(model.named_modules())
    for name in stage.modules:
        module = modules[name]
        if not hasattr(module, "reset_parameters"):
            raise ValueError(
                f"module {name!r} ({type(module).__name__}) has no reset_parameters(): use "
                "inits=('authors',) for this model"
            )
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        fresh = copy.deepcopy(module).to("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.reset_parameters()
        with torch.no_grad():
            for key, value in fresh.state_dict(keep_vars=False).items():
                if "." in key:
                    continue  # a child module's own entry: its stage resets it
                target = getattr(module, key)
                if isinstance(target, Tensor):
                    target.copy_(value)


def _stage_generator(seed: int, index: int, draw: int = 0) -> torch.Generator:
    """The generator of stage ``index``'s new weights in weight draw ``draw`` (draw 0 as before
    draws existed)."""
    return torch.Generator().manual_seed(seed * 100_003 + index + draw * 1_000_000_007)


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

    Curves: ``(measure, variant)`` per method along the stages, step 0 the original model,
    over all draws and images; also ``{measure}_defined`` (maps that became constant left out)
    for the correlations and ``constant`` (the fraction of constant maps). Scores:
    ``{measure}@top`` (cascading, after the top stage), ``{measure}@all`` (cascading, after
    every stage) and ``{measure}@independent`` (independent, mean over stages), with the suffix
    ``_reset`` for the second init (``spearman_abs@top_reset``). Lower similarity is better (the
    map depends on the weights). Per-draw, per-image values: ``result.units``.
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

    def maps_of(net: nn.Module, name: str, target: Tensor) -> Tensor:
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

    original = {name: maps_of(base, name, target) for name in names}
    original_constant = {name: constant_maps(original[name]) for name in names}
    raw_measures = tuple(config.measures)
    shown = _example_columns(len(stages))
    k = min(config.example_images, len(images))
    example_maps: dict[str, list[Tensor]] = {"original": [original[n][:k] for n in names]}
    runs = [
        (init, variant, variant if j == 0 else f"{variant}_{init}")
        for j, init in enumerate(config.inits)
        for variant in config.variants
    ]
    total = len(runs) * config.draws * len(stages)
    bar = tqdm(total=total, desc="sanity checks", disable=not progress)
    n_img, n_steps = len(images), len(stages) + 1
    # raw[vname][method][measure]: (D, S+1, N) float64, NaN where undefined; const: same, bool
    raw: dict[str, dict[str, dict[str, Tensor]]] = {}
    const: dict[str, dict[str, Tensor]] = {}
    for init, variant, vname in runs:
        raw[vname] = {
            n: {
                m: torch.full((config.draws, n_steps, n_img), float("nan"), dtype=torch.float64)
                for m in raw_measures
            }
            for n in names
        }
        const[vname] = {
            n: torch.zeros(config.draws, n_steps, n_img, dtype=torch.bool) for n in names
        }
        for name in names:
            same = map_similarities(original[name], original[name], raw_measures)
            for m in raw_measures:
                raw[vname][name][m][:, 0] = same[m]
            const[vname][name][:, 0] = original_constant[name]
        for d in range(config.draws):
            net = copy.deepcopy(base)
            for i, stage in enumerate(stages):
                if variant == "independent":
                    net = copy.deepcopy(base)
                gen = _stage_generator(seed, i, d)
                if init == "authors":
                    randomise_stage_(net, stage, gen, config.init_std)
                else:
                    reset_stage_(net, stage, gen)
                explained = (
                    target
                    if config.target == "original"
                    else predict(net, images, config.batch_size).argmax(1)
                )
                bar.set_postfix(init=init, variant=variant, draw=d, stage=stage.name)
                for name in names:
                    maps = maps_of(net, name, explained)
                    sims = map_similarities(original[name], maps, raw_measures)
                    for m in raw_measures:
                        raw[vname][name][m][d, i + 1] = sims[m]
                    const[vname][name][d, i + 1] = constant_maps(maps)
                    if vname == "cascading" and d == 0 and i + 1 in shown and k:
                        example_maps.setdefault(f"→ {stage.name}", []).append(maps[:k])
                bar.update()
    bar.close()

    result = BenchmarkResult("sanity", model_name, names, [], [], {})
    curves, scores = result.curves, result.scores
    constant: dict[str, dict[str, list[int]]] = {}
    for vname, per_method in raw.items():
        constant[vname] = {}
        cascading = vname.startswith("cascading")
        suffix = vname[len("cascading") :] if cascading else vname[len("independent") :]
        for name, per_measure in per_method.items():
            flags = const[vname][name]  # (D, S+1, N)
            constant[vname][name] = [int(c) for c in flags.sum(dim=(0, 2))]
            became = flags & ~original_constant[name].view(1, 1, -1)
            tables: dict[str, Tensor] = {"constant": flags.double()}
            for m in raw_measures:
                values = per_measure[m]
                if m in CORRELATIONS and config.constant_similarity is not None:
                    counted = torch.where(
                        became, torch.full_like(values, config.constant_similarity), values
                    )
                else:
                    counted = values
                tables[m] = counted
                if m in CORRELATIONS:
                    tables[f"{m}_defined"] = torch.where(
                        became, torch.full_like(values, float("nan")), values
                    )
            for metric, values in tables.items():  # (D, S+1, N)
                flat = values.permute(1, 0, 2).reshape(n_steps, -1)  # (S+1, D*N)
                mean, sd, cnt = mean_std(flat, dim=1)
                for step in range(n_steps):
                    curves.append(
                        CurvePoint(
                            name,
                            metric,
                            vname,
                            step,
                            float(step),
                            labels[step],
                            float(mean[step]),
                            float(sd[step]),
                            int(cnt[step]),
                        )
                    )
                    result.set_units(name, metric, vname, step, values[:, step])
                if metric == "constant":
                    continue
                if cascading:
                    for tag, step in (("top", 1), ("all", n_steps - 1)):
                        tm, ts, tn = mean_std(values[:, step].flatten())
                        scores.append(
                            Score(
                                name,
                                f"{metric}@{tag}{suffix}",
                                float(tm),
                                float(ts),
                                int(tn),
                                "lower",
                            )
                        )
                else:  # per draw and image, the mean over the independently randomised stages
                    per_unit = values[:, 1:].nanmean(1)  # (D, N)
                    result.set_units(name, metric, vname, -1, per_unit)
                    im, isd, inn = mean_std(per_unit.flatten())
                    scores.append(
                        Score(
                            name,
                            f"{metric}@independent{suffix}",
                            float(im),
                            float(isd),
                            int(inn),
                            "lower",
                        )
                    )
    result.settings = {
        **asdict(config),
        "num_images": len(images),
        "seed": seed,
        "stages": [asdict(s) for s in stages],
        "target": (
            "the class the original model predicts (as Quantus)"
            if config.target == "original"
            else "the randomised model's own prediction, after every stage (as Adebayo et al.)"
        ),
        "target_option": config.target,
        "constant_maps": constant,  # variant -> method -> constant maps per step, all draws
        "maps_per_step": config.draws * len(images),
        "variants_run": [{"init": i, "variant": v, "name": n} for i, v, n in runs],
        "units": "units[method/metric/variant/step]: a (draws, images) table; step -1 of an "
        "independent variant holds each unit's mean over the stages (the @independent score); "
        "metric 'constant' is 1 where the map is constant; '{measure}_defined' leaves maps that "
        "became constant out (NaN), '{measure}' counts them as constant_similarity",
        "figure_panels": [["spearman_abs", n] for _, _, n in runs]
        + [["spearman_abs_defined", n] for _, v, n in runs if v == "cascading"],
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
    result.examples = examples
    return result
