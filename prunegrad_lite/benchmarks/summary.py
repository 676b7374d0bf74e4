"""``summary.md``, rebuilt purely from the result files of a folder.

:func:`write_summary` reads every ``{benchmark}_{model}.json`` that
:meth:`~prunegrad_lite.benchmarks.results.BenchmarkResult.save` wrote into a folder (and
``run.json``, when there is one, for the preset, device, timings and notes) and writes
``summary.md`` beside them. Every verdict in it is a paired comparison recomputed from the
per-unit values stored in those files (:mod:`~prunegrad_lite.benchmarks.paper`,
:mod:`~prunegrad_lite.benchmarks.stats`), so anyone can check or recompute it from the files
alone; ``prunegrad-lite reproduce`` calls it at the end of a run.

Example
-------
>>> path = write_summary("docs/results")
>>> print(path.read_text())
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from prunegrad_lite.benchmarks.paper import (
    closing_table,
    compare_with_paper,
    conditions,
    paper_tables,
)
from prunegrad_lite.benchmarks.results import BenchmarkResult, write_text
from prunegrad_lite.benchmarks.stats import paired_difference

__all__ = ["load_results", "pixel_tables", "sanity_tables", "summary_text", "write_summary"]

_ORDER = ("sanity", "pixel", "roar")
_BENCH_TITLES = {
    "pixel": "Pixel perturbation (fractional change of the predicted class's probability)",
    "roar": "ROAR (test accuracy after removing the top pixels and retraining)",
    "sanity": "Sanity checks (similarity of the map to the original as weights are randomised)",
}


def load_results(folder: str | os.PathLike) -> dict[tuple[str, str], BenchmarkResult]:
    """Every ``{benchmark}_{model}.json`` result in ``folder``: ``{(benchmark, model): result}``."""
    out: dict[tuple[str, str], BenchmarkResult] = {}
    for path in sorted(Path(folder).glob("*.json")):
        if path.name == "run.json" or not path.stem.startswith(tuple(f"{b}_" for b in _ORDER)):
            continue
        try:
            result = BenchmarkResult.load(path)
        except (KeyError, TypeError, ValueError):
            continue  # not a benchmark result
        if path.stem == f"{result.benchmark}_{result.model}":
            out[(result.benchmark, result.model)] = result
    return out


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _cmp(a: np.ndarray, b: np.ndarray) -> str:
    c = paired_difference(a, b, resamples=4000, seed=0)
    return f"{c.describe()} **{c.verdict('lower')}**"


def pixel_tables(result: BenchmarkResult) -> str:
    """Pixel perturbation under each replacement: LeRF at the first and last fraction and the
    mean |Δx| the removal made, per method; then PruneGrad paired against every other method."""
    conds = conditions(result)
    fractions = result.settings.get("fractions", [])
    if not fractions:
        return ""
    first, last = f"{100 * fractions[0]:g}%", f"{100 * fractions[-1]:g}%"
    lines = [
        f"**LeRF under each replacement** (mean over {result.settings.get('num_images')} "
        f"images; |Δx|: mean |x' - x| over the removed pixels at {first}, normalised units; "
        "lower LeRF is better)",
        "",
        "| method | "
        + " | ".join(f"{c.label}: LeRF {first} | LeRF {last} | abs Δx {first}" for c in conds)
        + " |",
        "|---|" + "---|---|---|" * len(conds),
    ]
    for m in result.methods:
        cells = []
        for c in conds:
            variant = "lerf" + c.variant_suffix
            for name in (f"{variant}@{first}", f"{variant}@{last}"):
                try:
                    cells.append(_fmt(result.score(m, name).mean))
                except KeyError:
                    cells.append("")
            try:
                cells.append(
                    _fmt(float(np.nanmean(result.unit_values(m, "abs_delta_x", variant, 0))))
                )
            except KeyError:
                cells.append("")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "**Order (lowest LeRF first) under each replacement**", ""]
    for c in conds:
        for frac in (first, last):
            name = f"lerf{c.variant_suffix}@{frac}"
            means = {}
            for m in result.methods:
                try:
                    means[m] = result.score(m, name).mean
                except KeyError:
                    pass
            order = sorted(means, key=lambda m: means[m])
            lines.append(f"- {c.label}, LeRF {frac}: " + " < ".join(order))
    if "prunegrad" in result.methods:
        lines += [
            "",
            "**PruneGrad − method, LeRF, paired over the same images** (difference [95% BCa "
            'interval], n; verdict on "PruneGrad is lower")',
            "",
            "| method | "
            + " | ".join(f"{c.label}, {f}" for c in conds for f in (first, last))
            + " |",
            "|---|" + "---|" * (2 * len(conds)),
        ]
        for m in result.methods:
            if m == "prunegrad":
                continue
            cells = []
            for c in conds:
                variant = "lerf" + c.variant_suffix
                for step in (0, len(fractions) - 1):
                    try:
                        a = result.unit_values("prunegrad", "prob_change", variant, step)
                        b = result.unit_values(m, "prob_change", variant, step)
                        cells.append(_cmp(a, b))
                    except KeyError:
                        cells.append("no per-image values")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _sanity_cell(result: BenchmarkResult, method: str, name: str) -> str:
    try:
        s = result.score(method, name)
    except KeyError:
        return ""
    return f"{_fmt(s.mean)} (n={s.n})"


def sanity_tables(result: BenchmarkResult) -> str:
    """Sanity checks per re-initialisation: Spearman |map|, SSIM and HOG scores with maps that
    became constant counted as 0 and left out, and the count of constant maps per stage."""
    s = result.settings
    inits = s.get("inits") or ["authors"]
    stages = [st["name"] for st in s.get("stages", [])]
    total = s.get("maps_per_step") or s.get("num_images")
    draws = s.get("draws", 1)
    lines: list[str] = []
    for i, init in enumerate(inits):
        suffix = "" if i == 0 else f"_{init}"
        measures = [m for m in s.get("measures", []) if m in ("spearman_abs", "ssim", "hog")]
        header = ["method"]
        names = []
        for m in measures:
            for tag in ("top", "all"):
                names.append(f"{m}@{tag}{suffix}")
                header.append(f"{m}@{tag} (constant = 0)" if m != "ssim" else f"ssim@{tag}")
                if m != "ssim":
                    names.append(f"{m}_defined@{tag}{suffix}")
                    header.append(f"{m}@{tag} (constant left out)")
        lines += [
            f"**Init {init!r}** (cascading; mean over {draws} weight draws x "
            f"{s.get('num_images')} images, n = maps with a defined value; lower = the map "
            "depends on the weights)",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for m in result.methods:
            lines.append(f"| {m} | " + " | ".join(_sanity_cell(result, m, n) for n in names) + " |")
        counts = (s.get("constant_maps") or {}).get(f"cascading{suffix}", {})
        if counts:
            lines += [
                "",
                f"Constant maps (init {init!r}, cascading), of {total} maps per stage "
                f"({draws} draws x {s.get('num_images')} images), after randomising from the "
                "logits down to each stage:",
                "",
                "| method | original | " + " | ".join(stages) + " |",
                "|---|" + "---|" * (len(stages) + 1),
            ]
            for m, c in counts.items():
                lines.append(f"| {m} | " + " | ".join(str(v) for v in c) + " |")
        ind = (s.get("constant_maps") or {}).get(f"independent{suffix}", {})
        if ind:
            lines += [
                "",
                f"Constant maps (init {init!r}, independent: only that stage randomised), of "
                f"{total} per stage:",
                "",
                "| method | original | " + " | ".join(stages) + " |",
                "|---|" + "---|" * (len(stages) + 1),
            ]
            for m, c in ind.items():
                lines.append(f"| {m} | " + " | ".join(str(v) for v in c) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _settings_line(result: BenchmarkResult) -> str:
    s = result.settings
    if result.benchmark == "pixel":
        reps = [r["replacement"] for r in s.get("replacements") or []] or [s.get("replacement")]
        return (
            f"{s['num_images']} images, fractions {s['fractions'][0]:g}..{s['fractions'][-1]:g}"
            f", replacements {', '.join(repr(r) for r in reps)} (the first is the main one: "
            "'mean' = 0 in normalised space, the normalisation mean colour; 'blur' = a Gaussian "
            f"blur, sigma {s.get('blur_sigma', 3.0):g} px; 'noisy_linear' = the noisy linear "
            "imputation of Rong et al. 2022, noise std "
            f"{s.get('noise_std', 0.01):g}). Per-image values: `pixel_{result.model}_units.csv`."
        )
    if result.benchmark == "roar":
        from prunegrad_lite.benchmarks.reproduce import _settings_line as roar_line

        return roar_line(result)
    stages = [st["name"] for st in s["stages"]]
    inits = s.get("inits") or ["authors"]
    init_text = {
        "authors": f"'authors': every weight and bias (BatchNorm's gamma too) from "
        f"N(0, {s['init_std']}^2), running statistics kept (the authors' code)",
        "reset": "'reset': each layer's own reset_parameters() (BatchNorm: gamma 1, beta 0, "
        "running statistics reset), as Adebayo et al. and Quantus",
    }
    return (
        f"{s['num_images']} images x {s.get('draws', 1)} weight draws per randomisation, "
        f"{len(stages)} stages from the logits down ({', '.join(stages)}); re-initialisations: "
        + "; ".join(init_text.get(i, i) for i in inits)
        + f". Explained class after randomisation: {s.get('target', 'the original prediction')}."
        " Scores after the top stage (@top), after all stages (@all), mean over independent "
        "stages (@independent); a map that became constant has no rank correlation: counted as "
        f"{s.get('constant_similarity')} in `{{measure}}` and left out in `{{measure}}_defined`."
        f" Per-draw, per-image values: `sanity_{result.model}_units.csv`."
    )


def summary_text(folder: str | os.PathLike, run: dict[str, Any] | None = None) -> str:
    """The text of ``summary.md`` for the results in ``folder`` (see :func:`write_summary`)."""
    folder = Path(folder)
    if run is None:
        path = folder / "run.json"
        run = json.loads(path.read_text()) if path.is_file() else {}
    results = load_results(folder)
    preset = (run.get("preset") or {}).get("name", "unknown")
    seconds = run.get("seconds") or {}
    cached = run.get("cached") or []
    lines = ["# PruneGrad's three benchmarks: our numbers beside the authors'", ""]
    if run:
        times = ", ".join(
            f"{k} {v:.0f} s"
            + (" (computed by an earlier call, read from the cache)" if k in cached else "")
            for k, v in seconds.items()
            if k != "total" and v is not None
        )
        lines.append(
            f"Preset **{preset}** on {run.get('device', '?')} ({run.get('torch_threads', '?')} "
            f"torch threads); wall time of this call {seconds.get('total', 0):.0f} s. Time each "
            f"benchmark took: {times}."
        )
    else:
        lines.append("(No run.json in this folder: preset and timings unknown.)")
    lines += [
        "",
        "Our models and data are not the authors' (their numbers, from their CVPR 2021 "
        "follow-up, not from arXiv 1911.11081, come from ResNet50 on ImageNet and ResNet8 on "
        "CIFAR-10): only the **qualitative** claims can be compared. Each claim below is a set "
        "of paired comparisons fixed in `prunegrad_lite/benchmarks/paper.py` before the results "
        "were seen: the difference between two methods on the same images (and weight draws / "
        "training seeds), its 95% bootstrap interval (BCa over images; percentile, crossed, "
        "over seeds x images), n, and a verdict: **AGREES** / **DISAGREES** when the interval "
        "lies wholly on the claimed / the other side of 0, **NOT RESOLVED** when it contains 0. "
        "A claim of several comparisons agrees only when all agree, disagrees when one "
        "disagrees. Everything here is recomputed from the result files of this folder by "
        "`prunegrad_lite.benchmarks.summary.write_summary`.",
    ]
    if preset not in ("full", "paper", "unknown"):
        lines += [
            "",
            f"**This is the {preset!r} preset:** few images, one seed, short training; "
            "its numbers are noisy and only show that the pipeline works.",
        ]
    notes = run.get("notes") or []
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    models = list(dict.fromkeys([*(run.get("models") or []), *(m for _, m in results)]))
    for model in models:
        by_bench = {b: results[(b, model)] for b in _ORDER if (b, model) in results}
        if not by_bench:
            continue
        lines += [
            "",
            f"## {model}",
            "",
            "### Our numbers, per method",
            "",
            "Mean ± std over units. LeRF: fractional output change (lower is better; main "
            "replacement); ROAR: test accuracy after retraining (lower is better); sanity: "
            "Spearman rank correlation of |map| with the original after the top stage and "
            "after all stages are randomised, cascading, main init, constant maps counted as 0 "
            "(lower passes). Comparisons with intervals are in the next section and the "
            "benchmark sections.",
            "",
            closing_table(by_bench),
            "### Against the paper (CVPR 2021 follow-up's claims)",
            "",
            compare_with_paper(by_bench),
        ]
        for bench, result in by_bench.items():
            stem = f"{bench}_{model}"
            lines += [f"### {_BENCH_TITLES[bench]}", "", _settings_line(result), ""]
            if bench == "pixel":
                lines += [pixel_tables(result)]
            elif bench == "sanity":
                lines += [sanity_tables(result)]
            else:
                lines += [result.to_markdown()]
            lines += [f"![{stem}]({stem}.png)", ""]
            if bench == "sanity" and (folder / f"sanity_{model}_maps.png").is_file():
                lines += [f"![maps](sanity_{model}_maps.png)", ""]
    lines += ["## The authors' numbers (CVPR 2021 follow-up; spec section 4)", "", paper_tables()]
    return "\n".join(lines) + "\n"


def write_summary(folder: str | os.PathLike) -> Path:
    """Rebuild ``folder/summary.md`` from the result files in ``folder``; return its path.

    Reads every ``{benchmark}_{model}.json`` there and ``run.json`` (preset, device, times,
    notes) when present; nothing else, so any verdict in it can be recomputed from the files.
    """
    return write_text(Path(folder) / "summary.md", summary_text(folder))
