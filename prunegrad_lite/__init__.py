"""prunegrad_lite: PruneGrad (Khakzar et al., arXiv 1911.11081) and its three benchmarks, for teaching.

Every public name is re-exported here explicitly; see ``__all__``.
"""

from __future__ import annotations

from prunegrad_lite.attribution import (
    DEFAULT_SPARSITY,
    ActivationSite,
    Attribution,
    Calibration,
    Gradient,
    GradientXInput,
    IntegratedGradients,
    NeuronScores,
    NoActivationError,
    PruneGrad,
    PruneGradExplanation,
    PruningMasks,
    SmoothGrad,
    apply_masks,
    calibrate_sparsity,
    count_activation_sites,
    intercept_activations,
    masks_from_scores,
    neuron_scores,
    percentile_threshold,
    preserve_model_state,
    pruned_perturbation,
    resolve_target,
)
from prunegrad_lite.device import model_device, resolve_device

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SPARSITY",
    "ActivationSite",
    "Attribution",
    "Calibration",
    "Gradient",
    "GradientXInput",
    "IntegratedGradients",
    "NeuronScores",
    "NoActivationError",
    "PruneGrad",
    "PruneGradExplanation",
    "PruningMasks",
    "SmoothGrad",
    "__version__",
    "apply_masks",
    "calibrate_sparsity",
    "count_activation_sites",
    "intercept_activations",
    "masks_from_scores",
    "model_device",
    "neuron_scores",
    "percentile_threshold",
    "preserve_model_state",
    "pruned_perturbation",
    "resolve_device",
    "resolve_target",
]
