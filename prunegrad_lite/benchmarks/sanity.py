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

Resuming: with ``cache_dir``, every randomisation step (init, variant, draw, stage) is stored
when it is done (``cache_dir/sanity/<setup>/<variant>_d<draw>_s<step>.pt``: the per-image
similarities and constant flags of every method, checksummed and written atomically), keyed by
the model's weights, the images, the methods and their options, the seed and the protocol. A
killed run redoes only the step it was in: the earlier stages of a cascading run are re-drawn
from their seeded generators (cheap) instead of recomputing their maps.

Example
-------
>>> result = sanity_checks(model, test.images[:200], ["gradient", "guided_backprop", "edge"])
>>> result.score("guided_backprop", "spearman_abs@top").mean     # stays high: fails
>>> result.save("runs/sanity")
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from prunegrad_lite.benchmarks.attribution_maps import (
    MethodLike,
    MethodOptions,
    benchmark_inputs,
    describe_options,
    maps_for_images,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.cache import load_tensor_cell, setup_hash, store_tensor_cell
from prunegrad_lite.benchmarks.randomisation import (
    Stage,
    randomisation_stages,
    randomise_stage_,
    reset_stage_,
    stage_generator,
)
from prunegrad_lite.benchmarks.results import BenchmarkResult, CurvePoint, Score, mean_std
from prunegrad_lite.benchmarks.similarity import SIMILARITIES, constant_maps, map_similarities

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
    cache_dir: str | os.PathLike | None = None,
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
    cache_dir : folder where every finished randomisation step is stored, so that a killed run
        resumes (see the module docstring); None: nothing cached.

    Curves: ``(measure, variant)`` per method along the stages, step 0 the original model,
    over all draws and images; also ``{measure}_defined`` (maps that became constant left out)
    for the correlations and ``constant`` (the fraction of constant maps). Scores:
    ``{measure}@top`` (cascading, after the top stage), ``{measure}@all`` (cascading, after
    every stage) and ``{measure}@independent`` (independent, mean over stages), with the suffix
    ``_reset`` for the second init (``spearman_abs@top_reset``). Lower similarity is better (the
    map depends on the weights). Per-draw, per-image values: ``result.units``.
    """
    config = config or SanityConfig()
    base, images, classes = benchmark_inputs(model, images, methods, method_options, device)
    base = copy.deepcopy(base).eval()  # the caller's model is never touched
    names = list(classes)
    target = predict(base, images, config.batch_size).argmax(1)  # (N,) original predictions
    stages = randomisation_stages(base, images[:1], config.depth)

    def maps_of(net: nn.Module, name: str, target: Tensor) -> Tensor:
        opts = options_for(method_options, name)
        batch = config.batch_size
        return maps_for_images(net, images, classes[name], options=opts, target=target,
                               batch_size=batch, seed=seed, progress=False)  # fmt: skip

    original = {name: maps_of(base, name, target) for name in names}
    runs = _runs(config)  # (init, variant, variant name): "cascading", "independent_reset", ...
    tables = {
        vname: _Similarities(original, config, len(stages), len(images)) for *_, vname in runs
    }
    shown, k = _example_columns(len(stages)), min(config.example_images, len(images))
    example_maps: dict[str, list[Tensor]] = {"original": [original[n][:k] for n in names]}
    steps = _StepCache(cache_dir, base, images, names, method_options, config, seed)
    total = len(runs) * config.draws * len(stages)
    bar = tqdm(total=total, desc="sanity checks", disable=not progress)
    for init, variant, vname in runs:
        for d in range(config.draws):
            net = copy.deepcopy(base)
            for i, stage in enumerate(stages):  # from the logits down
                if variant == "independent":
                    net = copy.deepcopy(base)  # only this stage randomised
                if init == "authors":
                    randomise_stage_(net, stage, stage_generator(seed, i, d), config.init_std)
                else:
                    reset_stage_(net, stage, stage_generator(seed, i, d))
                example = vname == "cascading" and d == 0 and i + 1 in shown and k > 0
                bar.set_postfix(init=init, variant=variant, draw=d, stage=stage.name)
                done = steps.load(vname, d, i + 1, len(tables[vname].measures), example)
                if done is None:  # compute this step's maps and similarities
                    explained = (
                        target
                        if config.target == "original"
                        else predict(net, images, config.batch_size).argmax(1)
                    )
                    shown_maps = []
                    for name in names:
                        maps = maps_of(net, name, explained)
                        tables[vname].record(name, d, i + 1, maps)
                        shown_maps.append(maps[:k])
                    done = (tables[vname].step_table(d, i + 1), shown_maps if example else None)
                    steps.store(vname, d, i + 1, *done)
                else:
                    tables[vname].restore(d, i + 1, done[0])
                if example:
                    example_maps[f"→ {stage.name}"] = list(done[1])
                bar.update()
    bar.close()
    result = BenchmarkResult("sanity", model_name, names, [], [], {})
    labels = ["original", *(s.name for s in stages)]
    constant = {
        vname: _add_variant(result, vname, t, labels, config) for vname, t in tables.items()
    }
    result.settings = _settings(config, len(images), seed, stages, constant, runs, method_options)
    result.examples = _examples(images, names, example_maps, k, display)
    return result


# --------------------------------------------------------------------------------------------------
# Recording the similarities and assembling the result
# --------------------------------------------------------------------------------------------------


def _runs(config: SanityConfig) -> list[tuple[str, str, str]]:
    """``(init, variant, variant name)`` per randomisation run: the first init's variants keep
    their plain names, the others' get the suffix ``_{init}``."""
    return [
        (init, variant, variant if j == 0 else f"{variant}_{init}")
        for j, init in enumerate(config.inits)
        for variant in config.variants
    ]


class _Similarities:
    """One variant's similarities to the original maps, per method and measure: (D, S+1, N)
    float64 tables (NaN where undefined; step 0 the original model), and which maps are
    constant, (D, S+1, N) bool."""

    def __init__(
        self, original: dict[str, Tensor], config: SanityConfig, num_stages: int, num_images: int
    ) -> None:
        self.original, self.measures = original, tuple(config.measures)
        self.original_constant = {name: constant_maps(m) for name, m in original.items()}
        shape = (config.draws, num_stages + 1, num_images)
        self.values: dict[str, dict[str, Tensor]] = {}
        self.constant: dict[str, Tensor] = {}
        for name, maps in original.items():
            same = map_similarities(maps, maps, self.measures)
            self.values[name] = {}
            for m in self.measures:
                self.values[name][m] = torch.full(shape, float("nan"), dtype=torch.float64)
                self.values[name][m][:, 0] = same[m]
            self.constant[name] = torch.zeros(shape, dtype=torch.bool)
            self.constant[name][:, 0] = self.original_constant[name]

    def record(self, name: str, draw: int, step: int, maps: Tensor) -> None:
        sims = map_similarities(self.original[name], maps, self.measures)
        for m in self.measures:
            self.values[name][m][draw, step] = sims[m]
        self.constant[name][draw, step] = constant_maps(maps)

    def step_table(self, draw: int, step: int) -> Tensor:
        """One step's values of every method, (M, K+1, N) float64: the K measures, then the
        constant flags (1.0 for a constant map); what :class:`_StepCache` stores."""
        return torch.stack(
            [
                torch.stack(
                    [
                        *(self.values[name][m][draw, step] for m in self.measures),
                        self.constant[name][draw, step].double(),
                    ]
                )
                for name in self.values
            ]
        )

    def restore(self, draw: int, step: int, table: Tensor) -> None:
        """Put back a step stored by :meth:`step_table`."""
        for j, name in enumerate(self.values):
            for q, m in enumerate(self.measures):
                self.values[name][m][draw, step] = table[j, q]
            self.constant[name][draw, step] = table[j, -1] > 0.5

    def tables(self, name: str, constant_similarity: float | None) -> dict[str, Tensor]:
        """Every metric of one method, (D, S+1, N): ``constant`` (1 for a constant map), each
        measure (a correlation of a map that became constant counted as
        ``constant_similarity``) and, for the correlations, ``{measure}_defined`` (such maps
        left out, NaN)."""
        flags = self.constant[name]
        became = flags & ~self.original_constant[name].view(1, 1, -1)
        out: dict[str, Tensor] = {"constant": flags.double()}
        for m in self.measures:
            values = self.values[name][m]
            if m in CORRELATIONS and constant_similarity is not None:
                out[m] = torch.where(became, torch.full_like(values, constant_similarity), values)
            else:
                out[m] = values
            if m in CORRELATIONS:
                out[f"{m}_defined"] = torch.where(
                    became, torch.full_like(values, float("nan")), values
                )
        return out


class _StepCache:
    """The finished randomisation steps of one sanity run on disk (``cache_dir`` None: off).

    A step's key holds everything its values depend on: the model's weights, the images, the
    methods with their options, the seed and the protocol except what only says *which* steps
    run (``variants``, ``inits``, ``draws``: a larger run reuses a smaller one's steps) and
    ``constant_similarity`` (applied when the result is assembled)."""

    def __init__(
        self,
        cache_dir: str | os.PathLike | None,
        model: nn.Module,
        images: Tensor,
        names: list[str],
        method_options: MethodOptions | None,
        config: SanityConfig,
        seed: int,
    ) -> None:
        self.folder: Path | None = None
        self.names, self.images = names, len(images)
        if cache_dir is None:
            return
        protocol = asdict(config)
        for which in ("variants", "inits", "draws", "constant_similarity"):
            protocol.pop(which)
        extra = ["sanity", names, describe_options(method_options), protocol, seed]
        self.folder = Path(cache_dir) / "sanity" / setup_hash(model, images, extra=extra)

    def _path(self, vname: str, draw: int, step: int, kind: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{vname}_d{draw}_s{step}{kind}.pt"

    def load(
        self, vname: str, draw: int, step: int, measures: int, example: bool
    ) -> tuple[Tensor, list[Tensor] | None] | None:
        """The stored step (its values and, when ``example``, the example maps per method), or
        None: compute it and :meth:`store` it (this process then holds its lock)."""
        if self.folder is None:
            return None
        shape = (len(self.names), measures + 1, self.images)
        table = load_tensor_cell(self._path(vname, draw, step, ""), shape=shape, kind="sanity")
        if table is None:
            return None
        if not example:
            return table, None
        maps = load_tensor_cell(self._path(vname, draw, step, "_maps"), kind="sanity_maps")
        if maps is None or maps.shape[0] != len(self.names):
            return None  # recompute the step (its maps were lost)
        return table, list(maps.unbind(0))

    def store(
        self, vname: str, draw: int, step: int, table: Tensor, maps: list[Tensor] | None
    ) -> None:
        if self.folder is None:
            return
        if maps is not None:  # the example maps first: a stored table means the step is done
            path = self._path(vname, draw, step, "_maps")
            load_tensor_cell(path, kind="sanity_maps")  # takes its lock
            store_tensor_cell(path, torch.stack(maps), kind="sanity_maps")
        store_tensor_cell(self._path(vname, draw, step, ""), table, kind="sanity")


def _add_variant(
    result: BenchmarkResult,
    vname: str,
    table: _Similarities,
    labels: list[str],
    config: SanityConfig,
) -> dict[str, list[int]]:
    """One variant's curves along the stages, per-unit values and scores for every method;
    returns the number of constant maps per method and step (over all draws)."""
    cascading = vname.startswith("cascading")
    suffix = vname[len("cascading") :] if cascading else vname[len("independent") :]
    n_steps = len(labels)
    constant: dict[str, list[int]] = {}
    for name in table.values:
        constant[name] = [int(c) for c in table.constant[name].sum(dim=(0, 2))]
        for metric, values in table.tables(name, config.constant_similarity).items():
            flat = values.permute(1, 0, 2).reshape(n_steps, -1)  # (S+1, D*N)
            mean, sd, cnt = mean_std(flat, dim=1)
            for step in range(n_steps):
                point = (float(mean[step]), float(sd[step]), int(cnt[step]))
                result.curves.append(
                    CurvePoint(name, metric, vname, step, float(step), labels[step], *point)
                )
                result.set_units(name, metric, vname, step, values[:, step])
            if metric == "constant":
                continue
            if cascading:  # after the top stage and after all of them
                for tag, step in (("top", 1), ("all", n_steps - 1)):
                    tm, ts, tn = mean_std(values[:, step].flatten())
                    score = f"{metric}@{tag}{suffix}"
                    result.scores.append(Score(name, score, float(tm), float(ts), int(tn), "lower"))
            else:  # per draw and image, the mean over the independently randomised stages
                per_unit = values[:, 1:].nanmean(1)  # (D, N)
                result.set_units(name, metric, vname, -1, per_unit)
                im, isd, inn = mean_std(per_unit.flatten())
                score = f"{metric}@independent{suffix}"
                result.scores.append(Score(name, score, float(im), float(isd), int(inn), "lower"))
    return constant


def _settings(
    config: SanityConfig,
    num_images: int,
    seed: int,
    stages: list[Stage],
    constant: dict[str, dict[str, list[int]]],
    runs: list[tuple[str, str, str]],
    method_options: MethodOptions | None,
) -> dict[str, Any]:
    """The protocol as run, for the result's ``settings``."""
    return {
        **asdict(config),
        "num_images": num_images,
        "seed": seed,
        "stages": [asdict(s) for s in stages],
        "target": (
            "the class the original model predicts (as Quantus)"
            if config.target == "original"
            else "the randomised model's own prediction, after every stage (as Adebayo et al.)"
        ),
        "target_option": config.target,
        "constant_maps": constant,  # variant -> method -> constant maps per step, all draws
        "maps_per_step": config.draws * num_images,
        "variants_run": [{"init": i, "variant": v, "name": n} for i, v, n in runs],
        "units": "units[method/metric/variant/step]: a (draws, images) table; step -1 of an "
        "independent variant holds each unit's mean over the stages (the @independent score); "
        "metric 'constant' is 1 where the map is constant; '{measure}_defined' leaves maps that "
        "became constant out (NaN), '{measure}' counts them as constant_similarity",
        "figure_panels": [["spearman_abs", n] for _, _, n in runs]
        + [["spearman_abs_defined", n] for _, v, n in runs if v == "cascading"],
        "method_options": describe_options(method_options),
    }


def _examples(
    images: Tensor,
    names: list[str],
    example_maps: dict[str, list[Tensor]],
    k: int,
    display: tuple[Sequence[float], Sequence[float]] | None,
) -> dict[str, Any]:
    """The example figure's data: the first ``k`` images and their maps per column."""
    if not k:
        return {}
    return {
        "images": images[:k],
        "methods": names,
        "maps": {col: torch.stack(v, 1) for col, v in example_maps.items()},  # (k, M, C, H, W)
        "display": display,
    }
