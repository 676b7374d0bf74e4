"""Attribution methods: PruneGrad, its steps and variants, and the baselines it is compared with."""

from prunegrad_lite.attribution.activations import (
    ActivationSite,
    NoActivationError,
    count_activation_sites,
    intercept_activations,
)
from prunegrad_lite.attribution.base import Attribution, preserve_model_state, resolve_target
from prunegrad_lite.attribution.gradients import (
    Gradient,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
)
from prunegrad_lite.attribution.prunegrad import (
    DEFAULT_SPARSITY,
    Calibration,
    PruneGrad,
    PruneGradExplanation,
    calibrate_sparsity,
    pruned_perturbation,
)
from prunegrad_lite.attribution.pruning import (
    NeuronScores,
    PruningMasks,
    apply_masks,
    masks_from_scores,
    neuron_scores,
    percentile_threshold,
)

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
    "apply_masks",
    "calibrate_sparsity",
    "count_activation_sites",
    "intercept_activations",
    "masks_from_scores",
    "neuron_scores",
    "percentile_threshold",
    "preserve_model_state",
    "pruned_perturbation",
    "resolve_target",
]
