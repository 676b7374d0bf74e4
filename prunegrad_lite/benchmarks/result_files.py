"""A benchmark result as text: its CSV tables, its Markdown table, its JSON, and JSON read back.

:meth:`~.results.BenchmarkResult.save` writes these texts into files; each function here takes
the result and returns one text, so that the file formats can be read in one place:

* ``{stem}_curves.csv`` and ``{stem}_scores.csv``: the tidy rows (:mod:`.result_rows`), with
  ``benchmark`` and ``model`` columns (:func:`curves_csv`, :func:`scores_csv`);
* ``{stem}_units.csv``: one row per per-unit value, empty for NaN (:func:`units_csv`);
* ``{stem}.md``: one row per method, one column per score, "mean ± std" (:func:`markdown_table`);
* ``{stem}.json``: everything but the example tensors, NaN as ``null``, the large per-unit
  tables one compact line per key (:func:`result_json`; :func:`result_fields` reads it back).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prunegrad_lite.benchmarks.result_rows import CurvePoint, Score, float_or_nan

if TYPE_CHECKING:
    from prunegrad_lite.benchmarks.results import BenchmarkResult

__all__ = [
    "curves_csv",
    "markdown_table",
    "result_fields",
    "result_json",
    "scores_csv",
    "units_csv",
]


# ------------------------------------------------------------------------------------ CSV


def _csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in columns})
    return buffer.getvalue()


def curves_csv(result: BenchmarkResult) -> str:
    """The curves as a tidy CSV table: one row per :class:`CurvePoint`."""
    columns = ["benchmark", "model", *(f.name for f in dataclasses.fields(CurvePoint))]
    return _csv(result.curve_rows(), columns)


def scores_csv(result: BenchmarkResult) -> str:
    """The scores as a tidy CSV table: one row per :class:`Score`."""
    columns = ["benchmark", "model", *(f.name for f in dataclasses.fields(Score))]
    return _csv(result.score_rows(), columns)


def units_csv(result: BenchmarkResult) -> str:
    """The per-unit values as a tidy CSV: one row per method, metric, variant, step, seed
    index and unit (image / test example) index; empty value for NaN."""
    columns = ["benchmark", "model", "method", "metric", "variant", "step", "seed", "unit"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*columns, "value"])
    for key, table in result.units.items():
        method, metric, variant, step = key.rsplit("/", 3)
        for s_index, row in enumerate(table):
            for u_index, v in enumerate(row):
                writer.writerow(
                    [
                        result.benchmark,
                        result.model,
                        method,
                        metric,
                        variant,
                        step,
                        s_index,
                        u_index,
                        "" if v is None else repr(float(v)),
                    ]
                )
    return buffer.getvalue()


# ------------------------------------------------------------------------------- Markdown


def _fmt(mean: float, std: float, n: int, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def _column(result: BenchmarkResult, name: str) -> str:
    better = next((s.better for s in result.scores if s.name == name and s.better), "")
    arrow = {"lower": " (↓)", "higher": " (↑)"}.get(better, "")
    return f"{name}{arrow}"


def markdown_table(result: BenchmarkResult, digits: int = 3) -> str:
    """A Markdown table: one row per method, one column per score, "mean ± std"."""
    names = result.score_names()
    header = ["method", *(_column(result, n) for n in names)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for method in result.methods:
        cells = [method]
        for name in names:
            try:
                s = result.score(method, name)
                cells.append(_fmt(s.mean, s.std, s.n, digits))
            except KeyError:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- JSON


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def result_json(result: BenchmarkResult) -> str:
    """The result as JSON text (``examples`` are not stored)."""
    payload = {
        "benchmark": result.benchmark,
        "model": result.model,
        "methods": result.methods,
        "settings": result.settings,
        "curves": [dataclasses.asdict(p) for p in result.curves],
        "scores": [dataclasses.asdict(s) for s in result.scores],
    }
    text = json.dumps(_json_safe(payload), indent=1)
    if not result.units:
        return text + "\n"
    # the per-unit tables are large: one compact line per key keeps the file readable
    lines = ",\n".join(
        f"  {json.dumps(k)}: {json.dumps(_json_safe(v), separators=(',', ':'))}"
        for k, v in result.units.items()
    )
    return text[: text.rindex("}")].rstrip() + ',\n "units": {\n' + lines + "\n }\n}\n"


def result_fields(text: str) -> dict[str, Any]:
    """The inverse of :func:`result_json`: the fields of a ``BenchmarkResult``, as keywords."""
    d = json.loads(text)
    curves = [
        CurvePoint(**{**p, "mean": float_or_nan(p["mean"]), "std": float_or_nan(p["std"])})
        for p in d["curves"]
    ]
    scores = [
        Score(**{**s, "mean": float_or_nan(s["mean"]), "std": float_or_nan(s["std"])})
        for s in d["scores"]
    ]
    units = {str(k): [list(row) for row in v] for k, v in d.get("units", {}).items()}
    return {
        "benchmark": d["benchmark"],
        "model": d["model"],
        "methods": d["methods"],
        "curves": curves,
        "scores": scores,
        "settings": d["settings"],
        "units": units,
    }
