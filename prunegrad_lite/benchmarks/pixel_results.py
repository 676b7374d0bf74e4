"""Pixel perturbation's result: each method's curves, per-image units and scores under each
replacement, and the protocol as run (used by :mod:`.pixel_perturbation`).

Example
-------
>>> variant_name("lerf", "blur", main=False)
'lerf_blur'
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from prunegrad_lite.benchmarks.attribution_maps import MethodOptions, describe_options
from prunegrad_lite.benchmarks.removal import fraction_label
from prunegrad_lite.benchmarks.results import (
    BenchmarkResult,
    CurvePoint,
    Score,
    area_under_curve,
    mean_std,
)

if TYPE_CHECKING:
    from prunegrad_lite.benchmarks.pixel_perturbation import PixelPerturbationConfig

__all__ = ["add_method", "pixel_settings", "variant_name", "variant_suffix"]


def variant_name(order: str, replacement: str | float, main: bool) -> str:
    """The curve variant of one order and replacement: ``"lerf"`` for the main replacement,
    ``"lerf_blur"`` (``"lerf_0.5"`` for a number) for the others."""
    return order + variant_suffix(replacement, main)


_BETTER = {"lerf": "lower", "morf": "higher"}


def variant_suffix(replacement: str | float, main: bool) -> str:
    """``""`` for the main replacement, ``"_blur"`` (``"_0.5"`` for a number) for the others."""
    if main:
        return ""
    return f"_{replacement:g}" if isinstance(replacement, (int, float)) else f"_{replacement}"


def add_method(
    result: BenchmarkResult,
    name: str,
    config: PixelPerturbationConfig,
    suffix: str,
    change: Tensor,
    delta: Tensor,
) -> None:
    """One method's curves under one replacement (``prob_change`` and ``abs_delta_x``, (O, F, N)
    each), their per-image units, and its scores: the area under each curve and the change at
    the smallest and largest fraction."""
    for metric, values in (("prob_change", change), ("abs_delta_x", delta)):
        m, s, k = mean_std(values, dim=2)  # (O, F)
        for i, order in enumerate(config.orders):
            variant = order + suffix
            for j, f in enumerate(config.fractions):
                point = (float(m[i, j]), float(s[i, j]), int(k[i, j]))
                result.curves.append(
                    CurvePoint(name, metric, variant, j, f, fraction_label(f), *point)
                )
                result.set_units(name, metric, variant, j, values[i, j])
    with_origin = torch.cat([change.new_zeros(change.shape[0], 1, change.shape[2]), change], 1)
    auc = area_under_curve([0.0, *config.fractions], with_origin, dim=1)  # (O, N)
    m, s, k = mean_std(change, dim=2)
    for i, order in enumerate(config.orders):
        variant, better = order + suffix, _BETTER[order]
        am, asd, an = mean_std(auc[i])
        result.scores.append(Score(name, f"{variant}_auc", float(am), float(asd), int(an), better))
        result.set_units(name, "prob_change_auc", variant, 0, auc[i])
        for j in sorted({0, len(config.fractions) - 1}):
            label = f"{variant}@{fraction_label(config.fractions[j])}"
            point = (float(m[i, j]), float(s[i, j]), int(k[i, j]))
            result.scores.append(Score(name, label, *point, better))


def pixel_settings(
    config: PixelPerturbationConfig,
    num_images: int,
    seed: int,
    method_options: MethodOptions | None,
) -> dict[str, Any]:
    """The protocol as run, for the result's ``settings``."""
    reps = config.replacements
    return {
        **asdict(config),
        "num_images": num_images,
        "seed": seed,
        "metric": "|p_c(x) - p_c(x')| / p_c(x), c the class predicted on the clean image",
        "ranking": "max over channels of |attribution|, ties broken at random (seeded)",
        "auc": "trapezoid over [0, max fraction] with (0, 0) prepended, divided by the range",
        "method_options": describe_options(method_options),
        "replacements": [
            {"replacement": rep, "variants": [variant_name(o, rep, r == 0) for o in config.orders]}
            for r, rep in enumerate(reps)
        ],
        "abs_delta_x": "mean |x' - x| over the removed pixels (all channels, normalised space)",
        "figure_panels": [
            ["prob_change", variant_name(o, rep, r == 0)]
            for r, rep in enumerate(reps)
            for o in config.orders
        ]
        + [
            ["abs_delta_x", variant_name(config.orders[0], rep, r == 0)]
            for r, rep in enumerate(reps)
        ],
        "units": "per image: units[method/metric/variant/step] is a (1, N) table over the images; "
        "metric prob_change_auc (step 0) holds each image's area under the curve",
    }
