"""ROAR's result, assembled from its retrained cells: curves, scores, per-image units and the
paired comparisons with their verdicts. Used by :mod:`.roar`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
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
from prunegrad_lite.benchmarks.roar_config import BASELINE, RoarConfig
from prunegrad_lite.benchmarks.stats import paired_difference

__all__ = ["roar_result"]


def _units(record: dict[str, Any]) -> Tensor:
    return torch.tensor([c == "1" for c in record["correct"]], dtype=torch.float64)


def _comparisons(
    result: BenchmarkResult,
    names: list[str],
    steps: list[tuple[int, str]],
    variant: str,
    fractions: Sequence[float],
) -> list[dict[str, Any]]:
    """PruneGrad (when run) against every other ranking, and every ranking against random:
    paired differences of per-image correctness over seeds x test images, per fraction and
    over the whole removal range (``area``: each image's correctness integrated over the
    fractions like ``roar_auc``, trapezoids divided by the range, so that the mean of the
    per-image areas is the score)."""
    pairs: list[tuple[str, str]] = []
    if "prunegrad" in names:
        pairs += [("prunegrad", m) for m in names if m != "prunegrad"]
    if "random" in names:
        pairs += [(m, "random") for m in names if m not in ("random", "prunegrad")]
    out = []
    for a, b in pairs:
        if variant == "mask_only" and "random" in (a, b):
            continue
        tables_a = [result.unit_values(a, "accuracy", variant, step) for step, _ in steps]
        tables_b = [result.unit_values(b, "accuracy", variant, step) for step, _ in steps]
        rows = [(label, ta, tb) for (_, label), ta, tb in zip(steps, tables_a, tables_b)]
        if len(fractions) > 1:
            area_a = area_under_curve(fractions, np.stack(tables_a, axis=-1), dim=-1)
            area_b = area_under_curve(fractions, np.stack(tables_b, axis=-1), dim=-1)
            rows.append(("area", area_a.numpy(), area_b.numpy()))
        for label, ta, tb in rows:
            c = paired_difference(ta, tb, resamples=2000, seed=0)
            out.append(
                {
                    "a": a,
                    "b": b,
                    "variant": variant,
                    "at": label,
                    "claim": "lower",
                    "difference": c.difference,
                    "low": c.low,
                    "high": c.high,
                    "seeds": c.seeds,
                    "images": c.n,
                    "verdict": c.verdict("lower"),
                }
            )
    return out


def roar_result(
    names: list[str],
    records: Mapping[tuple[str, float, int, str], dict[str, Any]],
    config: RoarConfig,
    model_name: str,
    seed: int,
    recipe: str,
    method_options: MethodOptions | None,
    num_classes: int,
    num_test: int,
) -> BenchmarkResult:
    seeds = config.seeds
    acc = {key: float(r["test_accuracy"]) for key, r in records.items()}
    curves: list[CurvePoint] = []
    scores: list[Score] = []
    units: dict[tuple[str, str, int], Tensor] = {}
    base = None
    if config.baseline:
        base = torch.tensor([acc[(BASELINE, 0.0, s, "roar")] for s in seeds])
        base_units = torch.stack([_units(records[(BASELINE, 0.0, s, "roar")]) for s in seeds])
    for name in names:
        table = torch.tensor(
            [[acc[(name, f, s, "roar")] for f in config.fractions] for s in seeds]
        )  # (S, F)
        points = [] if base is None else [(0.0, "0% (reference)", base)]
        points += [(f, fraction_label(f), table[:, j]) for j, f in enumerate(config.fractions)]
        first = 0 if base is None else 1
        if base is not None:
            units[(name, "roar", 0)] = base_units
        for j, f in enumerate(config.fractions):
            units[(name, "roar", first + j)] = torch.stack(
                [_units(records[(name, f, s, "roar")]) for s in seeds]
            )
        for step, (x, label, values) in enumerate(points):
            m, sd, n = mean_std(values)
            curves.append(
                CurvePoint(name, "accuracy", "roar", step, x, label, float(m), float(sd), int(n))
            )
        if len(config.fractions) > 1:
            am, asd, an = mean_std(area_under_curve(config.fractions, table, dim=1))
            scores.append(Score(name, "roar_auc", float(am), float(asd), int(an), "lower"))
        for j, f in enumerate(config.fractions):
            m, sd, n = mean_std(table[:, j])
            scores.append(
                Score(name, f"acc@{fraction_label(f)}", float(m), float(sd), int(n), "lower")
            )
    mask_only_names = [n for n in names if n != "random"] if config.mask_only else []
    for name in mask_only_names:
        for step, f in enumerate(config.fractions):
            values = torch.tensor([acc[(name, f, s, "mask_only")] for s in seeds])
            units[(name, "mask_only", step)] = torch.stack(
                [_units(records[(name, f, s, "mask_only")]) for s in seeds]
            )
            m, sd, n = mean_std(values)
            curves.append(
                CurvePoint(
                    name,
                    "accuracy",
                    "mask_only",
                    step,
                    f,
                    fraction_label(f),
                    float(m),
                    float(sd),
                    int(n),
                )
            )
            scores.append(
                Score(name, f"mask_only@{fraction_label(f)}", float(m), float(sd), int(n), "lower")
            )
    longer = None
    if config.longer_reference:
        longer = [float(acc[(BASELINE, 0.0, s, "longer")]) for s in seeds]
    ref_mean = None if base is None else float(base.mean())
    settings: dict[str, Any] = {
        "fractions": list(config.fractions),
        "seeds": list(seeds),
        "recipe": dataclasses.asdict(config.recipe),
        "recipe_hash": recipe,
        "network": config.network,
        "validation": config.validation,
        "replacement": config.replacement,
        "baseline": config.baseline,
        "mask_only": config.mask_only,
        "other_class": list(config.other_class),
        "chance": 1.0 / num_classes,  # the mask-only control's accuracy without leakage
        "num_test": num_test,
        # a cell's binomial standard error at the reference accuracy, sqrt(p (1 - p) / N)
        "binomial_se": None
        if ref_mean is None
        else math.sqrt(ref_mean * (1 - ref_mean) / num_test),
        "reference_accuracy": None if base is None else [float(v) for v in base],
        "longer_reference": config.longer_reference,
        "reference_accuracy_3x_longer": longer if config.longer_reference == 3 else None,
        "reference_accuracy_longer": longer,
        "fill": "per-channel mean of the training images (normalised units)"
        if config.replacement == "mean"
        else "noisy linear imputation (ROAD, Rong et al. 2022)",
        "ranking": "max over channels of |attribution|, ties broken at random (seeded)",
        "seed": seed,
        "method_options": describe_options(method_options),
        "cells": [
            {
                "variant": variant,
                **{k: r[k] for k in ("method", "fraction", "seed", "test_accuracy", "wall_time_s")},
                "best_epoch": r.get("best_epoch"),
            }
            for (_, _, _, variant), r in records.items()
        ],
    }
    result = BenchmarkResult("roar", model_name, names, curves, scores, settings)
    for (name, variant, step), table in units.items():
        result.set_units(name, "accuracy", variant, step, table)
    steps = [(1 if base is not None else 0) + j for j in range(len(config.fractions))]
    labels = [fraction_label(f) for f in config.fractions]
    fractions = list(config.fractions)
    comparisons = _comparisons(result, names, list(zip(steps, labels)), "roar", fractions)
    if config.mask_only:
        comparisons += _comparisons(
            result,
            mask_only_names,
            list(zip(range(len(labels)), labels)),
            "mask_only",
            fractions,
        )
    settings["comparisons"] = comparisons
    return result
