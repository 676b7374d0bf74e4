"""The one results format every benchmark returns: tidy curves, per-method scores, the protocol.

A benchmark measures, for each attribution method, a **curve** (a metric along an x axis: the
fraction of pixels removed, or the randomisation stage) and a few **scores** that summarise it
(the area under a curve, the value at one point). :class:`BenchmarkResult` holds both as tidy
rows (one row per method, metric, variant and x position), plus the settings the benchmark ran
with, and writes them as CSV and Markdown tables, JSON (:mod:`.result_files`), and a PNG figure.
The rows are in :mod:`.result_rows`, the mean, spread and area in :mod:`.aggregate`.

Spread is always the **sample standard deviation** (``ddof=1``) over the units averaged
(images for pixel perturbation and sanity checks, training seeds for ROAR), 0 when there is
one unit; NaN values (e.g. a rank correlation with a constant map) are left out of the mean and
of ``n``.

The **per-unit values** behind each curve point are kept too (``units``), so that any paired
comparison between methods can be recomputed from the saved files: one (S, N) table per
``method/metric/variant/step`` key, S seeds (1 for image-only benchmarks) by N images or test
examples, NaN where a value is undefined (``None`` in JSON).

Example
-------
>>> result = pixel_perturbation(model, x, ["gradient", "prunegrad"])
>>> print(result.to_markdown())
>>> paths = result.save("runs/pixel")          # CSV, Markdown, JSON and PNG
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunegrad_lite.benchmarks import result_files
from prunegrad_lite.benchmarks.aggregate import area_under_curve, mean_std
from prunegrad_lite.benchmarks.result_rows import (
    CurvePoint,
    Score,
    unit_array,
    unit_key,
    unit_table,
)
from prunegrad_lite.io import atomic_write, write_text

__all__ = [  # with the names of the modules above that were imported from here
    "BenchmarkResult",
    "CurvePoint",
    "Score",
    "area_under_curve",
    "mean_std",
    "unit_key",
    "write_text",
]


@dataclass
class BenchmarkResult:
    """What a benchmark returns: curves and scores per method, the settings, and figure data.

    Attributes
    ----------
    benchmark : "sanity", "pixel" or "roar".
    model : a name for the explained model (e.g. "fashion_mnist").
    methods : the methods, in the order they were run.
    curves : tidy :class:`CurvePoint` rows.
    scores : tidy :class:`Score` rows.
    settings : the protocol as run, JSON-able (fractions, replacement, seeds, recipe, ...).
    units : per-unit values, ``{unit_key(method, metric, variant, step): (S, N) table}``: S seeds
        (1 when only images vary) by N images / test examples; NaN stored as ``None``.
    examples : tensors for the example figure (not saved); may be empty.

    Example
    -------
    >>> result.curve("prunegrad", "prob_change", "lerf")     # x, mean, std arrays
    >>> result.score("prunegrad", "lerf_auc").mean
    >>> result.unit_values("prunegrad", "prob_change", "lerf", 0)  # (S, N) per-image values
    >>> fig = result.plot(); paths = result.save("runs/pixel")
    """

    benchmark: str
    model: str
    methods: list[str]
    curves: list[CurvePoint]
    scores: list[Score]
    settings: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict, repr=False)
    units: dict[str, list[list[float | None]]] = field(default_factory=dict, repr=False)

    # ---- per-unit values --------------------------------------------------------------------
    def set_units(self, method: str, metric: str, variant: str, step: int, values: Any) -> None:
        """Store the per-unit values of one curve point: (N,) images or (S, N) seeds x images.

        NaN marks an undefined value; it is stored as ``None`` and read back as NaN.
        """
        self.units[unit_key(method, metric, variant, step)] = unit_table(values)

    def unit_values(self, method: str, metric: str, variant: str, step: int) -> np.ndarray:
        """The (S, N) float64 per-unit values of one curve point (NaN where undefined).

        ``KeyError`` when the result holds none for that point (e.g. a file written before
        per-unit values were stored).
        """
        key = unit_key(method, metric, variant, step)
        if key not in self.units:
            raise KeyError(f"no per-unit values {key!r} in this {self.benchmark} result")
        return unit_array(self.units[key])

    def has_units(self, method: str, metric: str, variant: str, step: int) -> bool:
        """Whether per-unit values are stored for that curve point."""
        return unit_key(method, metric, variant, step) in self.units

    def units_csv(self) -> str:
        """The per-unit values as a tidy CSV (:func:`~.result_files.units_csv`)."""
        return result_files.units_csv(self)

    # ---- access -----------------------------------------------------------------------------
    def curve(self, method: str, metric: str, variant: str) -> tuple[np.ndarray, ...]:
        """``(x, mean, std, labels)`` of one method's curve, in step order."""
        points = sorted(
            (
                p
                for p in self.curves
                if (p.method, p.metric, p.variant) == (method, metric, variant)
            ),
            key=lambda p: p.step,
        )
        if not points:
            raise KeyError(f"no curve {metric!r}/{variant!r} for method {method!r}")
        return (
            np.array([p.x for p in points]),
            np.array([p.mean for p in points]),
            np.array([p.std for p in points]),
            np.array([p.label for p in points]),
        )

    def score(self, method: str, name: str) -> Score:
        """The score ``name`` of ``method``; ``KeyError`` when there is none."""
        for s in self.scores:
            if s.method == method and s.name == name:
                return s
        raise KeyError(f"no score {name!r} for method {method!r}")

    def score_names(self) -> list[str]:
        """Score names in first-seen order."""
        return list(dict.fromkeys(s.name for s in self.scores))

    def panels(self) -> list[tuple[str, str]]:
        """The (metric, variant) pairs that have curves, in first-seen order."""
        return list(dict.fromkeys((p.metric, p.variant) for p in self.curves))

    # ---- tables -----------------------------------------------------------------------------
    def curve_rows(self) -> list[dict[str, Any]]:
        """The curves as dicts, with ``benchmark`` and ``model`` columns (a tidy table)."""
        base = {"benchmark": self.benchmark, "model": self.model}
        return [{**base, **dataclasses.asdict(p)} for p in self.curves]

    def score_rows(self) -> list[dict[str, Any]]:
        """The scores as dicts, with ``benchmark`` and ``model`` columns (a tidy table)."""
        base = {"benchmark": self.benchmark, "model": self.model}
        return [{**base, **dataclasses.asdict(s)} for s in self.scores]

    def curves_csv(self) -> str:
        return result_files.curves_csv(self)

    def scores_csv(self) -> str:
        return result_files.scores_csv(self)

    def to_markdown(self, digits: int = 3) -> str:
        """A Markdown table: one row per method, one column per score, "mean ± std"."""
        return result_files.markdown_table(self, digits)

    # ---- files ------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The result as JSON text (:func:`~.result_files.result_json`)."""
        return result_files.result_json(self)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkResult:
        """The inverse of :meth:`to_json` (``examples`` are not stored)."""
        return cls(**result_files.result_fields(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchmarkResult:
        """Read a result written by :meth:`save` (its ``.json`` file).

        Raises a ``ValueError`` naming the file when it is not such a result (empty, truncated,
        another kind of JSON).
        """
        text = Path(path).read_text()
        try:
            return cls.from_json(text)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(
                f"{path} is not a benchmark result this version can read "
                f"({type(err).__name__}: {err}): write it again with BenchmarkResult.save"
            ) from err

    def save(
        self, out_dir: str | os.PathLike, stem: str | None = None, figure: bool = True
    ) -> dict[str, Path]:
        """Write ``{stem}_curves.csv``, ``{stem}_scores.csv``, ``{stem}.md``, ``{stem}.json``,
        ``{stem}_units.csv`` (per-image values; only when there are any) and (``figure=True``)
        ``{stem}.png`` into ``out_dir``, each atomically.

        ``stem`` defaults to ``"{benchmark}_{model}"``. Returns the paths by kind.
        """
        out = Path(out_dir)
        stem = stem or f"{self.benchmark}_{self.model}"
        paths = {
            "curves": write_text(out / f"{stem}_curves.csv", self.curves_csv()),
            "scores": write_text(out / f"{stem}_scores.csv", self.scores_csv()),
            "markdown": write_text(out / f"{stem}.md", self.to_markdown()),
            "json": write_text(out / f"{stem}.json", self.to_json()),
        }
        if self.units:
            paths["units"] = write_text(out / f"{stem}_units.csv", self.units_csv())
        if figure:
            import matplotlib.pyplot as plt

            fig = self.plot()
            with atomic_write(out / f"{stem}.png") as f:
                fig.savefig(f, format="png", dpi=100)
            plt.close(fig)
            paths["figure"] = out / f"{stem}.png"
        return paths

    def plot(self, **kwargs: Any):
        """The benchmark's curves figure (:func:`~prunegrad_lite.benchmarks.plots.plot_curves`)."""
        from prunegrad_lite.benchmarks.plots import plot_curves

        return plot_curves(self, **kwargs)
