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
import os
from pathlib import Path
from typing import Any

from prunegrad_lite.benchmarks.paper import closing_table, compare_with_paper, paper_tables
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.tables import pixel_tables, sanity_tables, settings_text
from prunegrad_lite.io import write_text

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
            f"benchmark took in the call that finished it: {times}. A result assembled from "
            "pieces cached by earlier, interrupted calls (sanity steps, ROAR cells) took only "
            "that assembly here; ROAR's section gives the training time of its networks."
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
            lines += [f"### {_BENCH_TITLES[bench]}", "", settings_text(result), ""]
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
