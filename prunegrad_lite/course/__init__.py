"""The notebook course: one module per notebook, holding its computations, figures and widget.

Notebooks call these as ``pgl.course.<name>`` (``import prunegrad_lite as pgl``); the library
(methods, steps, data, models, benchmarks, figures) stays ``pgl.<name>``.

======================================  ===============================================
module                                  notebook
======================================  ===============================================
:mod:`.shared`                          all: ``pick``, ``environment``, the widget base
:mod:`.n00_setup_and_first_map`         00_setup_and_first_map
:mod:`.n01_neuron_importance`           01_neuron_importance: Taylor scores per layer
:mod:`.n01_ablation_check`              01_neuron_importance: the score against ablation
:mod:`.n01_widgets`                     01_neuron_importance: the channel and Taylor-part widgets
:mod:`.n02_input_specific_pruning`      02_input_specific_pruning
:mod:`.n03_prunegrad`                   03_prunegrad
:mod:`.n03_perturbation`                03_prunegrad: PruneGrad as the best local perturbation
:mod:`.n03_answers`                     03_prunegrad: the exercises' answers
:mod:`.n03_from_scratch`                03_prunegrad: the model the from-scratch method hooks
:mod:`.n04_comparing_methods`           04_comparing_methods
:mod:`.n05_sanity_checks`               05_sanity_checks
:mod:`.n06_pixel_perturbation`          06_pixel_perturbation
:mod:`.n06_answers`                     06_pixel_perturbation: the exercises' answers
:mod:`.n07_roar`                        07_roar (``course_results`` also 08)
:mod:`.n07_answers`                     07_roar: the exercises' answers
:mod:`.n08_putting_it_together`         08_putting_it_together
======================================  ===============================================

Example
-------
>>> import prunegrad_lite as pgl
>>> parts = pgl.course.taylor_parts(model, x[:pgl.course.pick(64, 8)])
>>> pgl.course.build_pruning_widget(model, x[:8])
"""

from prunegrad_lite.course.n00_setup_and_first_map import (
    FirstMapAnswer,
    answer_kept_fraction,
    answer_red_pixels,
    answer_sparsity_zero,
    build_first_map_widget,
    plot_examples,
    plot_method_diagram,
)
from prunegrad_lite.course.n01_ablation_check import (
    AblationCheck,
    LastSiteAnswer,
    OpposingNeuronsAnswer,
    answer_inactive_neurons,
    answer_last_site,
    answer_opposing_neurons,
    plot_ablation_check,
    taylor_vs_ablation,
)
from prunegrad_lite.course.n01_neuron_importance import (
    LayerStats,
    TaylorParts,
    format_layer_stats,
    layer_score_stats,
    plot_channel_scores,
    plot_layer_scores,
    plot_taylor_parts,
    taylor_parts,
    top_channels,
)
from prunegrad_lite.course.n01_widgets import (
    build_neuron_importance_widget,
    build_taylor_parts_widget,
)
from prunegrad_lite.course.n02_input_specific_pruning import (
    PruningAnswer,
    PruningSweep,
    answer_kept_below_zero_fraction,
    answer_random_control,
    build_pruning_widget,
    format_pruning_sweeps,
    plot_kept_per_site,
    plot_pruning_sweep,
    pruning_sweep,
)
from prunegrad_lite.course.n03_answers import (
    DeadFractionAnswer,
    SecondClassAnswer,
    answer_circular_test,
    answer_dead_fraction,
    answer_second_class,
)
from prunegrad_lite.course.n03_from_scratch import relu_calls_as_modules
from prunegrad_lite.course.n03_perturbation import (
    DIRECTIONS,
    PerturbationGains,
    perturbation_gains,
    plot_perturbation_gains,
)
from prunegrad_lite.course.n03_prunegrad import (
    SparsityMaps,
    build_prunegrad_widget,
    build_target_class_widget,
    sparsity_maps,
)
from prunegrad_lite.course.n04_comparing_methods import (
    MethodMaps,
    PassCounts,
    answer_controls_ignore_the_model,
    answer_grad_x_input,
    answer_pass_counts,
    format_similarity,
    pass_counts,
    build_method_widget,
    method_maps,
    describe_methods,
    format_timings,
)
from prunegrad_lite.course.n05_sanity_checks import (
    CascadingMaps,
    ConstantMapAnswer,
    FreshNoiseAnswer,
    GuidedBackpropAnswer,
    build_sanity_widget,
    cascading_maps,
    constant_map_answer,
    fresh_noise_answer,
    guided_backprop_answer,
    panel_similarities,
)
from prunegrad_lite.course.n06_pixel_perturbation import (
    REPLACEMENT_LABELS,
    PerturbedImages,
    build_pixel_perturbation_widget,
    paper_numbers,
    perturbed_images,
    plot_removed_pixels,
)
from prunegrad_lite.course.n06_answers import (
    MeanFillAnswer,
    PairedLeadAnswer,
    ReplacementAnswer,
    mean_fill_answer,
    paired_lead_answer,
    replacement_answer,
)
from prunegrad_lite.course.n07_roar import (
    COMMITTED_RESULTS,
    COURSE_PRESET,
    CourseResults,
    build_roar_widget,
    course_preset,
    course_results,
    describe_roar_preset,
    plot_roar_masks,
    roar_findings,
    roar_images,
)
from prunegrad_lite.course.n07_answers import (
    MaskLeakAnswer,
    RetrainingsAnswer,
    mask_leak_answer,
    retrainings_answer,
)
from prunegrad_lite.course.n08_putting_it_together import (
    IMAGE_SUFFIXES,
    Explained,
    MyPhotos,
    SecondClassPhotoAnswer,
    SparsityAnswer,
    build_scores_widget,
    claim_counts,
    explain_images,
    load_my_photos,
    plot_scores,
    second_class_answer,
    sparsity_answer,
)
from prunegrad_lite.course.shared import (
    Environment,
    LessonWidget,
    clip_maps,
    environment,
    map_cosine,
    markdown,
    pick,
    prediction_labels,
)

__all__ = [
    "build_taylor_parts_widget",
    "plot_method_diagram",
    "pass_counts",
    "format_similarity",
    "answer_pass_counts",
    "answer_grad_x_input",
    "answer_controls_ignore_the_model",
    "PassCounts",
    "answer_random_control",
    "answer_kept_below_zero_fraction",
    "PruningAnswer",
    "map_cosine",
    "answer_opposing_neurons",
    "answer_last_site",
    "answer_inactive_neurons",
    "OpposingNeuronsAnswer",
    "LastSiteAnswer",
    "answer_sparsity_zero",
    "answer_red_pixels",
    "answer_kept_fraction",
    "FirstMapAnswer",
    "AblationCheck",
    "COURSE_PRESET",
    "CascadingMaps",
    "CourseResults",
    "DIRECTIONS",
    "DeadFractionAnswer",
    "Environment",
    "LayerStats",
    "LessonWidget",
    "MethodMaps",
    "PerturbationGains",
    "SecondClassAnswer",
    "PerturbedImages",
    "PruningSweep",
    "SparsityMaps",
    "TaylorParts",
    "build_first_map_widget",
    "build_method_widget",
    "build_neuron_importance_widget",
    "build_pixel_perturbation_widget",
    "answer_circular_test",
    "answer_dead_fraction",
    "answer_second_class",
    "build_prunegrad_widget",
    "build_target_class_widget",
    "build_pruning_widget",
    "build_roar_widget",
    "build_sanity_widget",
    "build_scores_widget",
    "cascading_maps",
    "clip_maps",
    "method_maps",
    "course_preset",
    "course_results",
    "describe_methods",
    "environment",
    "format_layer_stats",
    "format_pruning_sweeps",
    "format_timings",
    "layer_score_stats",
    "markdown",
    "perturbation_gains",
    "perturbed_images",
    "pick",
    "plot_ablation_check",
    "plot_channel_scores",
    "plot_examples",
    "plot_kept_per_site",
    "plot_layer_scores",
    "plot_perturbation_gains",
    "plot_pruning_sweep",
    "plot_removed_pixels",
    "plot_scores",
    "plot_taylor_parts",
    "prediction_labels",
    "relu_calls_as_modules",
    "pruning_sweep",
    "roar_images",
    "sparsity_maps",
    "taylor_parts",
    "taylor_vs_ablation",
    "top_channels",
    # notebooks 05-08: answers, findings, your own images
    "ConstantMapAnswer",
    "FreshNoiseAnswer",
    "GuidedBackpropAnswer",
    "constant_map_answer",
    "fresh_noise_answer",
    "guided_backprop_answer",
    "panel_similarities",
    "REPLACEMENT_LABELS",
    "MeanFillAnswer",
    "PairedLeadAnswer",
    "ReplacementAnswer",
    "mean_fill_answer",
    "paired_lead_answer",
    "paper_numbers",
    "replacement_answer",
    "COMMITTED_RESULTS",
    "MaskLeakAnswer",
    "RetrainingsAnswer",
    "describe_roar_preset",
    "mask_leak_answer",
    "plot_roar_masks",
    "retrainings_answer",
    "roar_findings",
    "IMAGE_SUFFIXES",
    "Explained",
    "MyPhotos",
    "SecondClassPhotoAnswer",
    "SparsityAnswer",
    "claim_counts",
    "explain_images",
    "load_my_photos",
    "second_class_answer",
    "sparsity_answer",
]
