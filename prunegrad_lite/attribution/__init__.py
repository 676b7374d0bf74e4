"""Attribution methods: PruneGrad, its steps and variants, and the baselines it is compared with."""

from prunegrad_lite.attribution.activations import (
    ActivationSite,
    NoActivationError,
    count_activation_sites,
    intercept_activations,
)
from prunegrad_lite.attribution.base import Attribution, preserve_model_state, resolve_target
from prunegrad_lite.attribution.controls import EdgeMap, RandomMap, sobel_magnitude
from prunegrad_lite.attribution.fullgrad import (
    FullGrad,
    FullGradDecomposition,
    fullgrad_decomposition,
)
from prunegrad_lite.attribution.gradcam import GradCAM
from prunegrad_lite.attribution.gradients import (
    Gradient,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
)
from prunegrad_lite.attribution.guided_backprop import GuidedBackprop
from prunegrad_lite.attribution.calibration import Calibration, calibrate_sparsity
from prunegrad_lite.attribution.percentile import percentile_threshold
from prunegrad_lite.attribution.prunegrad import (
    DEFAULT_SPARSITY,
    PruneGrad,
    PruneGradExplanation,
)
from prunegrad_lite.attribution.pruning import (
    NeuronScores,
    PruningMasks,
    apply_masks,
    masks_from_scores,
    neuron_scores,
)
from prunegrad_lite.attribution.relu6 import CLIP_TREATMENTS, ScoreDiagnosis, diagnose_scores
from prunegrad_lite.attribution.variants import pruned_perturbation
from prunegrad_lite.attribution.registry import (
    METHODS,
    SmoothGradSquared,
    attribute,
    get_method,
)

__all__ = [
    "CLIP_TREATMENTS",
    "DEFAULT_SPARSITY",
    "METHODS",
    "ActivationSite",
    "Attribution",
    "Calibration",
    "EdgeMap",
    "FullGrad",
    "FullGradDecomposition",
    "GradCAM",
    "Gradient",
    "GradientXInput",
    "GuidedBackprop",
    "IntegratedGradients",
    "NeuronScores",
    "NoActivationError",
    "PruneGrad",
    "PruneGradExplanation",
    "PruningMasks",
    "RandomMap",
    "ScoreDiagnosis",
    "SmoothGrad",
    "SmoothGradSquared",
    "apply_masks",
    "attribute",
    "calibrate_sparsity",
    "count_activation_sites",
    "diagnose_scores",
    "fullgrad_decomposition",
    "get_method",
    "intercept_activations",
    "masks_from_scores",
    "neuron_scores",
    "percentile_threshold",
    "preserve_model_state",
    "pruned_perturbation",
    "resolve_target",
    "sobel_magnitude",
]
