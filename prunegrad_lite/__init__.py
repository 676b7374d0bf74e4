"""prunegrad_lite: PruneGrad (Khakzar et al., arXiv 1911.11081) and its three benchmarks, for teaching.

Every public name of the library is re-exported here explicitly; see ``__all__``. The notebook
course (one module per notebook) is :mod:`prunegrad_lite.course`, used as ``pgl.course.<name>``.
"""

from __future__ import annotations

from prunegrad_lite.attribution import (
    CLIP_TREATMENTS,
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
    ScoreDiagnosis,
    SmoothGrad,
    apply_masks,
    calibrate_sparsity,
    count_activation_sites,
    diagnose_scores,
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
from prunegrad_lite.benchmarks import (
    BenchmarkResult,
    PixelPerturbationConfig,
    RoarConfig,
    SanityConfig,
    pixel_perturbation,
    reproduce,
    roar,
    sanity_checks,
)
from prunegrad_lite.data import (
    DataError,
    DataFile,
    LabeledData,
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
)
from prunegrad_lite.device import model_device, resolve_device
from prunegrad_lite.figures import (
    plot_heatmap,
    plot_method_grid,
    plot_overlay,
    plot_sparsity_sweep,
)
from prunegrad_lite.maps import clip_percentile, normalize_map, reduce_channels, to_display_image
from prunegrad_lite.models import (
    MODELS,
    FashionResNet,
    ModelInfo,
    WeightsUnavailableError,
    load_model,
    model_info,
)
from prunegrad_lite.training import (
    TrainConfig,
    TrainResult,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train_model,
)
from prunegrad_lite import course  # the notebook course: pgl.course.<name> (after the library)

__version__ = "0.1.0"

__all__ = [
    "CLIP_TREATMENTS",
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
    "ScoreDiagnosis",
    "SmoothGrad",
    "SmoothGradSquared",
    "__version__",
    "apply_masks",
    "attribute",
    "calibrate_sparsity",
    "check_file",
    "clip_percentile",
    "count_activation_sites",
    "diagnose_scores",
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
    "reduce_channels",
    "resolve_device",
    "resolve_target",
    "to_display_image",
    "MODELS",
    "FashionResNet",
    "ModelInfo",
    "WeightsUnavailableError",
    "load_model",
    "model_info",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_checkpoint",
    "save_checkpoint",
    "train_model",
    # the benchmarks (prunegrad_lite.benchmarks)
    "BenchmarkResult",
    "PixelPerturbationConfig",
    "RoarConfig",
    "SanityConfig",
    "pixel_perturbation",
    "reproduce",
    "roar",
    "sanity_checks",
    # the notebook course, one module per notebook (prunegrad_lite.course)
    "course",
]
