"""The pure computations behind the notebook course, one module per lesson.

* :mod:`~prunegrad_lite.lessons.neurons`: activations, gradients and Taylor scores (notebook 01);
* :mod:`~prunegrad_lite.lessons.pruning`: what input-specific pruning keeps and changes (02);
* :mod:`~prunegrad_lite.lessons.perturbation`: PruneGrad as the best local perturbation (03);
* :mod:`~prunegrad_lite.lessons.comparison`: every method on the same inputs (04).

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
    LayerStats,
    TaylorParts,
    format_layer_stats,
    layer_score_stats,
    taylor_parts,
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

__all__ = [
    "DIRECTIONS",
    "LayerStats",
    "MethodMaps",
    "PerturbationGains",
    "PruningSweep",
    "SparsityMaps",
    "TaylorParts",
    "clip_maps",
    "compute_maps",
    "describe_methods",
    "format_layer_stats",
    "format_pruning_sweeps",
    "format_timings",
    "layer_score_stats",
    "perturbation_gains",
    "pruning_sweep",
    "sparsity_maps",
    "taylor_parts",
    "top_channels",
]
