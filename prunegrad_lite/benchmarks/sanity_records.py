"""The sanity checks' records: each variant's per-image similarities as the stages are
randomised (:class:`Similarities`), the finished steps on disk (:class:`StepCache`, so that a
killed run resumes), and the result assembled from them (curves, per-unit values, scores,
settings, the example figure's maps). Used by :mod:`.sanity`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunegrad_lite.benchmarks.attribution_maps import MethodOptions, describe_options
from prunegrad_lite.benchmarks.cache import (
    load_tensor_cell,
    read_tensor,
    setup_hash,
    store_tensor_cell,
)
from prunegrad_lite.benchmarks.randomisation import Stage
from prunegrad_lite.benchmarks.results import BenchmarkResult, CurvePoint, Score, mean_std
from prunegrad_lite.benchmarks.sanity_config import CORRELATIONS, SanityConfig
from prunegrad_lite.benchmarks.similarity import constant_maps, map_similarities

__all__ = ["Similarities", "StepCache", "add_variant", "examples", "settings", "variant_runs"]


def variant_runs(config: SanityConfig) -> list[tuple[str, str, str]]:
    """``(init, variant, variant name)`` per randomisation run: the first init's variants keep
    their plain names, the others' get the suffix ``_{init}``."""
    return [
        (init, variant, variant if j == 0 else f"{variant}_{init}")
        for j, init in enumerate(config.inits)
        for variant in config.variants
    ]


class Similarities:
    """One variant's similarities to the original maps, per method and measure: (D, S+1, N)
    float64 tables (NaN where undefined; step 0 the original model), and which maps are
    constant, (D, S+1, N) bool."""

    def __init__(
        self, original: dict[str, Tensor], config: SanityConfig, num_stages: int, num_images: int
    ) -> None:
        self.original, self.measures = original, tuple(config.measures)
        self.original_constant = {name: constant_maps(m) for name, m in original.items()}
        shape = (config.draws, num_stages + 1, num_images)
        self.values: dict[str, dict[str, Tensor]] = {}
        self.constant: dict[str, Tensor] = {}
        for name, maps in original.items():
            same = map_similarities(maps, maps, self.measures)
            self.values[name] = {}
            for m in self.measures:
                self.values[name][m] = torch.full(shape, float("nan"), dtype=torch.float64)
                self.values[name][m][:, 0] = same[m]
            self.constant[name] = torch.zeros(shape, dtype=torch.bool)
            self.constant[name][:, 0] = self.original_constant[name]

    def record(self, name: str, draw: int, step: int, maps: Tensor) -> None:
        sims = map_similarities(self.original[name], maps, self.measures)
        for m in self.measures:
            self.values[name][m][draw, step] = sims[m]
        self.constant[name][draw, step] = constant_maps(maps)

    def step_table(self, draw: int, step: int) -> Tensor:
        """One step's values of every method, (M, K+1, N) float64: the K measures, then the
        constant flags (1.0 for a constant map); what :class:`StepCache` stores."""
        return torch.stack(
            [
                torch.stack(
                    [
                        *(self.values[name][m][draw, step] for m in self.measures),
                        self.constant[name][draw, step].double(),
                    ]
                )
                for name in self.values
            ]
        )

    def restore(self, draw: int, step: int, table: Tensor) -> None:
        """Put back a step stored by :meth:`step_table`."""
        for j, name in enumerate(self.values):
            for q, m in enumerate(self.measures):
                self.values[name][m][draw, step] = table[j, q]
            self.constant[name][draw, step] = table[j, -1] > 0.5

    def tables(self, name: str, constant_similarity: float | None) -> dict[str, Tensor]:
        """Every metric of one method, (D, S+1, N): ``constant`` (1 for a constant map), each
        measure (a correlation of a map that became constant counted as
        ``constant_similarity``) and, for the correlations, ``{measure}_defined`` (such maps
        left out, NaN)."""
        flags = self.constant[name]
        became = flags & ~self.original_constant[name].view(1, 1, -1)
        out: dict[str, Tensor] = {"constant": flags.double()}
        for m in self.measures:
            values = self.values[name][m]
            if m in CORRELATIONS and constant_similarity is not None:
                out[m] = torch.where(became, torch.full_like(values, constant_similarity), values)
            else:
                out[m] = values
            if m in CORRELATIONS:
                out[f"{m}_defined"] = torch.where(
                    became, torch.full_like(values, float("nan")), values
                )
        return out


class StepCache:
    """The finished randomisation steps of one sanity run on disk (``cache_dir`` None: off).

    A step's key holds everything its values depend on: the model's weights, the images, the
    methods with their options, the seed and the protocol except what only says *which* steps
    run (``variants``, ``inits``, ``draws``: a larger run reuses a smaller one's steps) and
    ``constant_similarity`` (applied when the result is assembled)."""

    def __init__(
        self,
        cache_dir: str | os.PathLike | None,
        model: nn.Module,
        images: Tensor,
        names: list[str],
        method_options: MethodOptions | None,
        config: SanityConfig,
        seed: int,
    ) -> None:
        self.folder: Path | None = None
        self.names, self.images = names, len(images)
        if cache_dir is None:
            return
        protocol = asdict(config)
        for which in ("variants", "inits", "draws", "constant_similarity"):
            protocol.pop(which)
        extra = ["sanity", names, describe_options(method_options), protocol, seed]
        self.folder = Path(cache_dir) / "sanity" / setup_hash(model, images, extra=extra)

    def _path(self, vname: str, draw: int, step: int, kind: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{vname}_d{draw}_s{step}{kind}.pt"

    def load(
        self, vname: str, draw: int, step: int, measures: int, example: bool, lock: bool = True
    ) -> tuple[Tensor, list[Tensor] | None] | None:
        """The stored step (its values and, when ``example``, the example maps per method), or
        None: compute it and :meth:`store` it (this process then holds its lock; with
        ``lock=False`` it takes none: a read of what another process stored)."""
        if self.folder is None:
            return None

        def get(path: Path, kind: str, **check: Any) -> Tensor | None:
            return (
                load_tensor_cell(path, kind=kind, **check) if lock else read_tensor(path, **check)
            )

        shape = (len(self.names), measures + 1, self.images)
        table = get(self._path(vname, draw, step, ""), "sanity", shape=shape)
        if table is None:
            return None
        if not example:
            return table, None
        maps = get(self._path(vname, draw, step, "_maps"), "sanity_maps")
        if maps is None or maps.shape[0] != len(self.names):
            return None  # recompute the step (its maps were lost)
        return table, list(maps.unbind(0))

    def store(
        self, vname: str, draw: int, step: int, table: Tensor, maps: list[Tensor] | None
    ) -> None:
        if self.folder is None:
            return
        if maps is not None:  # the example maps first: a stored table means the step is done
            path = self._path(vname, draw, step, "_maps")
            load_tensor_cell(path, kind="sanity_maps")  # takes its lock
            store_tensor_cell(path, torch.stack(maps), kind="sanity_maps")
        store_tensor_cell(self._path(vname, draw, step, ""), table, kind="sanity")


def add_variant(
    result: BenchmarkResult,
    vname: str,
    table: Similarities,
    labels: list[str],
    config: SanityConfig,
) -> dict[str, list[int]]:
    """One variant's curves along the stages, per-unit values and scores for every method;
    returns the number of constant maps per method and step (over all draws)."""
    cascading = vname.startswith("cascading")
    suffix = vname[len("cascading") :] if cascading else vname[len("independent") :]
    n_steps = len(labels)
    constant: dict[str, list[int]] = {}
    for name in table.values:
        constant[name] = [int(c) for c in table.constant[name].sum(dim=(0, 2))]
        for metric, values in table.tables(name, config.constant_similarity).items():
            flat = values.permute(1, 0, 2).reshape(n_steps, -1)  # (S+1, D*N)
            mean, sd, cnt = mean_std(flat, dim=1)
            for step in range(n_steps):
                point = (float(mean[step]), float(sd[step]), int(cnt[step]))
                result.curves.append(
                    CurvePoint(name, metric, vname, step, float(step), labels[step], *point)
                )
                result.set_units(name, metric, vname, step, values[:, step])
            if metric == "constant":
                continue
            if cascading:  # after the top stage and after all of them
                for tag, step in (("top", 1), ("all", n_steps - 1)):
                    tm, ts, tn = mean_std(values[:, step].flatten())
                    score = f"{metric}@{tag}{suffix}"
                    result.scores.append(Score(name, score, float(tm), float(ts), int(tn), "lower"))
            else:  # per draw and image, the mean over the independently randomised stages
                per_unit = values[:, 1:].nanmean(1)  # (D, N)
                result.set_units(name, metric, vname, -1, per_unit)
                im, isd, inn = mean_std(per_unit.flatten())
                score = f"{metric}@independent{suffix}"
                result.scores.append(Score(name, score, float(im), float(isd), int(inn), "lower"))
    return constant


def settings(
    config: SanityConfig,
    num_images: int,
    seed: int,
    stages: list[Stage],
    constant: dict[str, dict[str, list[int]]],
    runs: list[tuple[str, str, str]],
    method_options: MethodOptions | None,
) -> dict[str, Any]:
    """The protocol as run, for the result's ``settings``."""
    return {
        **asdict(config),
        "num_images": num_images,
        "seed": seed,
        "stages": [asdict(s) for s in stages],
        "target": (
            "the class the original model predicts (as Quantus)"
            if config.target == "original"
            else "the randomised model's own prediction, after every stage (as Adebayo et al.)"
        ),
        "target_option": config.target,
        "constant_maps": constant,  # variant -> method -> constant maps per step, all draws
        "maps_per_step": config.draws * num_images,
        "variants_run": [{"init": i, "variant": v, "name": n} for i, v, n in runs],
        "units": "units[method/metric/variant/step]: a (draws, images) table; step -1 of an "
        "independent variant holds each unit's mean over the stages (the @independent score); "
        "metric 'constant' is 1 where the map is constant; '{measure}_defined' leaves maps that "
        "became constant out (NaN), '{measure}' counts them as constant_similarity",
        "figure_panels": [["spearman_abs", n] for _, _, n in runs]
        + [["spearman_abs_defined", n] for _, v, n in runs if v == "cascading"],
        "method_options": describe_options(method_options),
    }


def examples(
    images: Tensor,
    names: list[str],
    example_maps: dict[str, list[Tensor]],
    k: int,
    display: tuple[Sequence[float], Sequence[float]] | None,
) -> dict[str, Any]:
    """The example figure's data: the first ``k`` images and their maps per column."""
    if not k:
        return {}
    return {
        "images": images[:k],
        "methods": names,
        "maps": {col: torch.stack(v, 1) for col, v in example_maps.items()},  # (k, M, C, H, W)
        "display": display,
    }
