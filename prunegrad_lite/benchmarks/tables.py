"""The benchmark sections of ``summary.md``: each result's protocol in words, and its tables.

:func:`settings_text` says how a result was run (one paragraph, from its settings);
:func:`pixel_tables` and :func:`sanity_tables` set out the pixel-perturbation and sanity-check
numbers with PruneGrad's paired comparisons; :func:`roar_settings_text` is ROAR's protocol,
its convergence check and its comparisons. :mod:`.summary` puts them together.

Example
-------
>>> print(pixel_tables(BenchmarkResult.load("docs/results/pixel_fashion_mnist.json")))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from prunegrad_lite.benchmarks.claims import conditions
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.stats import paired_difference

__all__ = ["pixel_tables", "roar_settings_text", "sanity_tables", "settings_text"]


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


def settings_text(result: BenchmarkResult) -> str:
    """One paragraph on the protocol a result was run with (markdown), from its settings."""
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
        return roar_settings_text(result)
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


def _mean_text(values: Sequence[float] | None) -> str:
    if not values:
        return "not run"
    v = torch.tensor(values, dtype=torch.float64)
    spread = f" ± {float(v.std()):.3f}" if len(v) > 1 else ""
    return f"{float(v.mean()):.3f}{spread} (seeds: {', '.join(f'{a:.3f}' for a in values)})"


def roar_settings_text(result: BenchmarkResult) -> str:
    """The ROAR protocol as run, its convergence check and its comparisons (markdown)."""
    s = result.settings
    r = s["recipe"]
    network = s.get("network", "fashion_resnet")
    text = (
        f"Fractions {s['fractions']}, training seeds {s['seeds']}; every cell retrains "
        f"**{network}** (width {r['width']}) from scratch: {r['optimizer']}, lr {r['lr']}, "
        f"{r['schedule']}, batch {r['batch_size']}, {r['epochs']} epochs, the checkpoint with "
        f"the best accuracy on {s.get('validation', 0):.0%} of the training images held out "
        f"(never the test set); replacement: {s['fill']}. The maps that rank the pixels are "
        f"the explained model's ({result.model}), for the class it predicts."
    )
    if s.get("reference_accuracy"):
        text += (
            f"\n\n**Convergence of the recipe.** Reference accuracy (unmodified images): "
            f"{_mean_text(s['reference_accuracy'])}"
        )
        longer = s.get("reference_accuracy_longer")
        if longer:
            gap = float(torch.tensor(longer).mean() - torch.tensor(s["reference_accuracy"]).mean())
            text += (
                f"; the same recipe trained {s['longer_reference']}x longer: "
                f"{_mean_text(longer)}, a gap of {100 * gap:.1f} points "
                f"({'within' if abs(gap) <= 0.015 else 'NOT within'} the 1.5 points required)"
            )
        if s.get("binomial_se") is not None:
            text += (
                f". One cell's binomial standard error on {s['num_test']} test images: "
                f"{s['binomial_se']:.4f}"
            )
        text += "."
    cells = s.get("cells") or []
    times = [c["wall_time_s"] for c in cells if c.get("wall_time_s") is not None]
    if times:
        text += (
            f" Training time of the {len(cells)} retrained networks: {sum(times) / 60:.0f} min "
            f"in all ({min(times):.0f}-{max(times):.0f} s each), as each was trained (a run "
            "resumed from the cache keeps each network's own time)."
        )
    if s.get("mask_only"):
        text += (
            '\n\n`mask_only@t` (Rong et al. 2022, ICML, "A Consistent and Efficient '
            'Evaluation Strategy for Attribution Methods"; not in the paper): the accuracy of '
            "a network trained with the same recipe on the removal mask alone (1 where a pixel "
            f"is replaced, 0 elsewhere); chance is {s['chance']:.2f}. Well above chance, the "
            "mask itself tells the retrained network the class, and ROAR's accuracy for that "
            "ranking measures the leak as much as what was removed. The random ranking's mask "
            "is independent of the image (chance by construction) and is not trained."
        )
    if s.get("other_class"):
        text += (
            " `{m}@other_class`: the ranking of the same method's map for a random class the "
            "model did **not** predict: it keeps the method's silhouette but not the "
            "predicted label, so a mask-only accuracy that drops to near chance for it "
            "points to label leakage, one that stays high to silhouette leakage (as for the "
            "`edge` control, whose map ignores the model)."
        )
    rows = s.get("comparisons") or []
    if rows:
        text += (
            "\n\n**Paired differences** (a - b of per-image correctness, mean over seeds x "
            "test images, 95% crossed bootstrap interval over seeds and images; claim: a "
            "lower, i.e. removing a's pixels hurts more; `area`: over all fractions):\n\n"
            "| a | b | variant | at | a - b [95% interval] | verdict (a lower) |\n"
            "|---|---|---|---|---|---|\n"
        )
        text += "\n".join(
            f"| {c['a']} | {c['b']} | {c['variant']} | {c['at']} | {c['difference']:+.3f} "
            f"[{c['low']:+.3f}, {c['high']:+.3f}] | {c['verdict']} |"
            for c in rows
        )
    return text
