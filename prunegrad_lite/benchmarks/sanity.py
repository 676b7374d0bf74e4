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

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.attribution_maps import (
    MethodLike,
    MethodOptions,
    benchmark_inputs,
    maps_for_images,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.randomisation import (  # re-exported: the course uses them
    Stage,
    check_resettable,
    randomisation_stages,
    randomise_stage_,
    reset_stage_,
    stage_generator,
)
from prunegrad_lite.benchmarks.executor import (
    Cell,
    Executor,
    executor_for,
    for_cells,
    run_cells,
)
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.sanity_cells import LOCK_KINDS as SANITY_LOCKS
from prunegrad_lite.benchmarks.sanity_cells import SanityData, SanityStep, sanity_step
from prunegrad_lite.benchmarks.sanity_config import VARIANTS, SanityConfig
from prunegrad_lite.benchmarks.sanity_records import (
    Similarities,
    StepCache,
    add_variant,
    examples,
    variant_runs,
    settings,
)
from prunegrad_lite.runtime import resolve_device

__all__ = [
    "VARIANTS",
    "SanityConfig",
    "Stage",
    "randomisation_stages",
    "randomise_stage_",
    "reset_stage_",
    "sanity_checks",
    "stage_generator",
]


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
    executor: str | Executor | None = None,
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
    executor : where the steps run (:mod:`.executor`), one cell each (:mod:`.sanity_cells`):
        "local" (default, here) or "ray", or an :class:`~.executor.Executor` (left open). The
        same result either way.

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
    if "reset" in config.inits:
        check_resettable(base, stages)  # an input error: before any work, not in every step

    def maps_of(net: nn.Module, name: str, target: Tensor) -> Tensor:
        opts = options_for(method_options, name)
        batch = config.batch_size
        return maps_for_images(net, images, classes[name], options=opts, target=target,
                               batch_size=batch, seed=seed, progress=False)  # fmt: skip

    original = {name: maps_of(base, name, target) for name in names}
    runs = variant_runs(config)  # (init, variant, variant name): "cascading", "independent_reset"
    tables = {vname: Similarities(original, config, len(stages), len(images)) for *_, vname in runs}
    shown, k = _example_columns(len(stages)), min(config.example_images, len(images))
    example_maps: dict[str, list[Tensor]] = {"original": [original[n][:k] for n in names]}
    steps = StepCache(cache_dir, base, images, names, method_options, config, seed)
    with executor_for(executor, device=resolve_device(device)) as runner:
        data = SanityData(for_cells(runner, base), images, target, original, stages, classes,
                          method_options, config, seed, device, steps, k)  # fmt: skip
        cells = [
            Cell(
                key=f"{vname}/d{d}/s{i + 1}",
                fn=sanity_step,
                args=(SanityStep(init, variant, vname, d, i + 1, example),),
                shared=(data,),
                label=f"sanity {vname} draw {d} stage {stage.name}",
                locks=SANITY_LOCKS,
            )
            for init, variant, vname in runs
            for d in range(config.draws)
            for i, stage in enumerate(stages)  # from the logits down
            for example in [vname == "cascading" and d == 0 and i + 1 in shown and k > 0]
        ]
        # a step that failed raises, with its error, once the others are done and cached
        done = run_cells(runner, cells, "sanity checks", progress)
    measures = len(config.measures)
    for cell in cells:  # in the steps' order, whatever order they finished in
        step: SanityStep = cell.args[0]
        stored = steps.load(step.vname, step.draw, step.step, measures, step.example, lock=False)
        table, maps_shown = done[cell.key] if stored is None else stored  # the cache first
        tables[step.vname].restore(step.draw, step.step, table)
        if step.example:
            example_maps[f"→ {stages[step.step - 1].name}"] = list(maps_shown)
    result = BenchmarkResult("sanity", model_name, names, [], [], {})
    labels = ["original", *(s.name for s in stages)]
    constant = {vname: add_variant(result, vname, t, labels, config) for vname, t in tables.items()}
    result.settings = settings(config, len(images), seed, stages, constant, runs, method_options)
    result.examples = examples(images, names, example_maps, k, display)
    return result
