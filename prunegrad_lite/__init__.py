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
from prunegrad_lite.attribution.controls import EdgeMap, RandomMap
from prunegrad_lite.attribution.fullgrad import FullGrad, fullgrad_decomposition
from prunegrad_lite.attribution.gradcam import GradCAM
from prunegrad_lite.attribution.guided_backprop import GuidedBackprop
from prunegrad_lite.attribution.registry import METHODS, SmoothGradSquared, attribute, get_method
from prunegrad_lite.data import (
    DataError,
    DataFile,
    LabeledData,
    build_fashion_mnist_subset,
    check_file,
    data_root,
    denormalize_imagenet,
    fetch,
    imagenet_classes,
    load_dataset,
    load_image_folder,
    load_photo,
    load_photos,
    preprocess_imagenet,
    read_idx,
    register,
)
from prunegrad_lite.device import model_device, resolve_device
from prunegrad_lite.figures import (
    plot_heatmap,
    plot_method_grid,
    plot_overlay,
    plot_sparsity_sweep,
)
from prunegrad_lite.maps import clip_percentile, normalize_map, reduce_channels, to_display_image

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SPARSITY",
    "METHODS",
    "ActivationSite",
    "Attribution",
    "Calibration",
    "DataError",
    "DataFile",
    "EdgeMap",
    "FullGrad",
    "GradCAM",
    "Gradient",
    "GradientXInput",
    "GuidedBackprop",
    "IntegratedGradients",
    "LabeledData",
    "NeuronScores",
    "NoActivationError",
    "PruneGrad",
    "PruneGradExplanation",
    "PruningMasks",
    "RandomMap",
    "SmoothGrad",
    "SmoothGradSquared",
    "__version__",
    "apply_masks",
    "attribute",
    "build_fashion_mnist_subset",
    "calibrate_sparsity",
    "check_file",
    "clip_percentile",
    "count_activation_sites",
    "data_root",
    "denormalize_imagenet",
    "fetch",
    "fullgrad_decomposition",
    "get_method",
    "imagenet_classes",
    "intercept_activations",
    "load_dataset",
    "load_image_folder",
    "load_photo",
    "load_photos",
    "masks_from_scores",
    "model_device",
    "neuron_scores",
    "normalize_map",
    "percentile_threshold",
    "plot_heatmap",
    "plot_method_grid",
    "plot_overlay",
    "plot_sparsity_sweep",
    "preprocess_imagenet",
    "preserve_model_state",
    "pruned_perturbation",
    "read_idx",
    "reduce_channels",
    "register",
    "resolve_device",
    "resolve_target",
    "to_display_image",
]
