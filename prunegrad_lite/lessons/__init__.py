"""The pure computations behind the notebook course, one module per lesson.

* :mod:`~prunegrad_lite.lessons.neurons`: activations, gradients and Taylor scores (notebook 01);
* :mod:`~prunegrad_lite.lessons.pruning`: what input-specific pruning keeps and changes (02);
* :mod:`~prunegrad_lite.lessons.perturbation`: PruneGrad as the best local perturbation (03);
* :mod:`~prunegrad_lite.lessons.comparison`: every method on the same inputs (04);
* :mod:`~prunegrad_lite.lessons.randomisation`: maps at every sanity-check stage (05);
* :mod:`~prunegrad_lite.lessons.removal`: the images pixel perturbation and ROAR make (06, 07);
* :mod:`~prunegrad_lite.lessons.reproduction`: the benchmarks at course size, cached (07, 08).

Their figures are in :mod:`prunegrad_lite.lesson_figures`, their widgets in
:mod:`prunegrad_lite.widgets`.
"""

from prunegrad_lite.lessons.comparison import (
    MethodMaps,
    clip_maps,
    compute_maps,
    describe_methods,
    format_timings,
)
from prunegrad_lite.lessons.neurons import (
    AblationCheck,
    LayerStats,
    TaylorParts,
    format_layer_stats,
    layer_score_stats,
    taylor_parts,
    taylor_vs_ablation,
    top_channels,
)
from prunegrad_lite.lessons.perturbation import (
    DIRECTIONS,
    PerturbationGains,
    SparsityMaps,
    perturbation_gains,
    sparsity_maps,
)
from prunegrad_lite.lessons.pruning import PruningSweep, format_pruning_sweeps, pruning_sweep
from prunegrad_lite.lessons.randomisation import CascadingMaps, cascading_maps
from prunegrad_lite.lessons.removal import PerturbedImages, perturbed_images, roar_images
from prunegrad_lite.lessons.reproduction import (
    COURSE_PRESET,
    CourseResults,
    course_preset,
    course_results,
)

__all__ = [
    "AblationCheck",
    "COURSE_PRESET",
    "CascadingMaps",
    "CourseResults",
    "DIRECTIONS",
    "LayerStats",
    "MethodMaps",
    "PerturbationGains",
    "PerturbedImages",
    "PruningSweep",
    "SparsityMaps",
    "TaylorParts",
    "cascading_maps",
    "clip_maps",
    "compute_maps",
    "course_preset",
    "course_results",
    "describe_methods",
    "format_layer_stats",
    "format_pruning_sweeps",
    "format_timings",
    "layer_score_stats",
    "perturbation_gains",
    "perturbed_images",
    "pruning_sweep",
    "roar_images",
    "sparsity_maps",
    "taylor_parts",
    "taylor_vs_ablation",
    "top_channels",
]
