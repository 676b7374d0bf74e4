"""The three benchmarks of the paper, one module each, and the ``reproduce`` run.

================================ ==============================================================
module                           what it holds
================================ ==============================================================
:mod:`.sanity`                   cascading / independent randomisation (Adebayo et al. 2018)
:mod:`.pixel_perturbation`       LeRF / MoRF pixel removal, fractional output change
:mod:`.roar`                     remove and retrain (Hooker et al. 2019), cached cells
:mod:`.results`                  the results format every benchmark returns
:mod:`.result_rows`              its rows: curve points, scores, per-unit tables
:mod:`.result_files`             its files' text: CSV, Markdown, JSON (and JSON read back)
:mod:`.aggregate`                mean and sample std over units, the area under a curve
:mod:`.similarity`               Spearman, SSIM, HOG similarity of maps
:mod:`.removal`                  ranking pixels, removal masks, replacement values
:mod:`.imputation`               noisy linear imputation of removed pixels (Rong et al. 2022)
:mod:`.stats`                    paired differences, bootstrap intervals, three-valued verdicts
:mod:`.summary`                  ``summary.md`` rebuilt from a folder of result files
:mod:`.tables`                   the benchmark sections of ``summary.md``: protocol and tables
:mod:`.attribution_maps`         maps for a whole image set, batch by batch
:mod:`.cache`                    checksummed, locked cache files of a run
:mod:`.plots`                    the benchmarks' figures
:mod:`.claims`                   how a claim is checked: paired comparisons, verdicts
:mod:`.paper`                    the authors' numbers and claims, and the comparison with ours
:mod:`.presets`                  what a ``reproduce`` run does: models, benchmarks, presets
:mod:`.setups`                   the models and images a ``reproduce`` run benchmarks
:mod:`.reproduce`                the ``reproduce`` run (``prunegrad-lite reproduce``)
================================ ==============================================================
"""

from prunegrad_lite.benchmarks.imputation import noisy_linear_impute
from prunegrad_lite.benchmarks.paper import closing_table, compare_with_paper
from prunegrad_lite.benchmarks.pixel_perturbation import (
    PixelPerturbationConfig,
    pixel_perturbation,
    probability_change,
)
from prunegrad_lite.benchmarks.plots import plot_curves, plot_sanity_maps
from prunegrad_lite.benchmarks.removal import (
    rank_pixels,
    removal_masks,
    remove_pixels,
    replace_pixels,
    replacement_images,
)
from prunegrad_lite.benchmarks.reproduce import PRESETS, Preset, reproduce
from prunegrad_lite.benchmarks.results import BenchmarkResult, CurvePoint, Score, area_under_curve
from prunegrad_lite.benchmarks.roar import RoarConfig, mask_top_pixels, removal_mask_images, roar
from prunegrad_lite.benchmarks.sanity import (
    SanityConfig,
    Stage,
    randomisation_stages,
    sanity_checks,
)
from prunegrad_lite.benchmarks.similarity import map_similarities, spearman, ssim
from prunegrad_lite.benchmarks.summary import write_summary
from prunegrad_lite.runtime import smoke_mode

__all__ = [
    "PRESETS",
    "BenchmarkResult",
    "CurvePoint",
    "PixelPerturbationConfig",
    "Preset",
    "RoarConfig",
    "SanityConfig",
    "Score",
    "Stage",
    "area_under_curve",
    "closing_table",
    "compare_with_paper",
    "map_similarities",
    "mask_top_pixels",
    "noisy_linear_impute",
    "removal_mask_images",
    "pixel_perturbation",
    "plot_curves",
    "plot_sanity_maps",
    "probability_change",
    "randomisation_stages",
    "rank_pixels",
    "removal_masks",
    "remove_pixels",
    "replace_pixels",
    "replacement_images",
    "reproduce",
    "roar",
    "sanity_checks",
    "smoke_mode",
    "spearman",
    "ssim",
    "write_summary",
]
