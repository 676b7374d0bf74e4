"""The one results format every benchmark returns: tidy curves, per-method scores, the protocol.

A benchmark measures, for each attribution method, a **curve** (a metric along an x axis: the
fraction of pixels removed, or the randomisation stage) and a few **scores** that summarise it
(the area under a curve, the value at one point). :class:`BenchmarkResult` holds both as tidy
rows (one row per method, metric, variant and x position), plus the settings the benchmark ran
with, and writes them as CSV and Markdown tables, JSON, and a PNG figure.

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

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prunegrad_lite.io import atomic_write, write_text

__all__ = [
    "BenchmarkResult",
    "CurvePoint",
    "Score",
    "area_under_curve",
    "mean_std",
    "unit_key",
    "write_text",
]


@dataclass(frozen=True)
class CurvePoint:
    """One point of one method's curve: a mean over images (or seeds) with its spread."""

    method: str  # registry name of the attribution method
    metric: str  # what is measured: "prob_change", "accuracy", "spearman_abs", "ssim", ...
    variant: str  # protocol variant: "lerf"/"morf", "roar", "cascading"/"independent"
    step: int  # 0-based position along the curve
    x: float  # fraction of pixels removed, or randomisation stage index
    label: str  # x as a reader sees it: "10%", "fc", "original"
    mean: float
    std: float  # sample std (ddof=1) over the n units; 0 when n == 1
    n: int  # images or seeds with a finite value


@dataclass(frozen=True)
class Score:
    """One number that summarises a method's curve, e.g. ``"lerf_auc"`` or ``"lerf@1%"``."""

    method: str
    name: str
    mean: float
    std: float  # sample std over images or seeds; 0 when n == 1
    n: int
    better: str = ""  # "lower", "higher", or "" when neither direction is better


def mean_std(values: Tensor | np.ndarray, dim: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, sample std (``ddof=1``, 0 for one value) and count of the finite values along ``dim``.

    NaNs are left out (a NaN marks an undefined value, e.g. Spearman with a constant map); the
    mean of no finite value is NaN.

    Example
    -------
    >>> mean_std(torch.tensor([1.0, 3.0, float("nan")]))
    (tensor(2., dtype=torch.float64), tensor(1.4142, dtype=torch.float64), tensor(2))
    """
    v = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values)
    v = v.detach().to("cpu", torch.float64)
    finite = torch.isfinite(v)
    n = finite.sum(dim)
    zeroed = torch.where(finite, v, torch.zeros_like(v))
    mean = zeroed.sum(dim) / n.clamp_min(1)
    mean = torch.where(n > 0, mean, torch.full_like(mean, math.nan))
    dev = torch.where(finite, v - mean.unsqueeze(dim), torch.zeros_like(v))
    var = dev.square().sum(dim) / (n - 1).clamp_min(1)
    std = torch.where(n > 1, var.sqrt(), torch.zeros_like(var))
    return mean, std, n


def area_under_curve(x: Sequence[float] | Tensor, y: Tensor | np.ndarray, dim: int = -1) -> Tensor:
    """Trapezoidal area under ``y(x)`` divided by the x range: the curve's mean height.

    ``x`` (K,) increasing; ``y`` (..., K, ...) with the K points along ``dim``. Dividing by
    ``x[-1] - x[0]`` puts the area on the metric's own scale (an accuracy AUC is an accuracy),
    so curves over different ranges stay comparable. Callers prepend a known point (pixel
    perturbation: change 0 at fraction 0) before calling.

    Example
    -------
    >>> area_under_curve([0.0, 0.5, 1.0], torch.tensor([0.0, 1.0, 1.0]))
    tensor(0.7500, dtype=torch.float64)
    """
    xs = torch.as_tensor(x, dtype=torch.float64)
    ys = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).to(torch.float64)
    if xs.ndim != 1 or len(xs) < 2:
        raise ValueError(f"x must hold at least two increasing points, got {xs.tolist()}")
    if not bool((xs[1:] > xs[:-1]).all()):
        raise ValueError(f"x must be strictly increasing, got {xs.tolist()}")
    if ys.shape[dim] != len(xs):
        raise ValueError(f"y has {ys.shape[dim]} points along dim {dim} but x has {len(xs)}")
    return torch.trapezoid(ys, xs, dim=dim) / (xs[-1] - xs[0])


def _fmt(mean: float, std: float, n: int, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def _csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in columns})
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def unit_key(method: str, metric: str, variant: str, step: int) -> str:
    """The key of one per-unit table in :attr:`BenchmarkResult.units`:
    ``"{method}/{metric}/{variant}/{step}"``."""
    for name, part in (("method", method), ("metric", metric), ("variant", variant)):
        if "/" in str(part):
            raise ValueError(f"{name} {part!r} must not contain '/' (it separates the key)")
    return f"{method}/{metric}/{variant}/{int(step)}"


def _unit_table(values: Any) -> list[list[float | None]]:
    """An (S, N) table as nested lists with NaN -> None; a 1-D input is one row (S = 1)."""
    arr = np.asarray(
        values.detach().cpu().double().numpy() if isinstance(values, Tensor) else values,
        dtype=np.float64,
    )
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"unit values must be (N,) or (S, N), got shape {tuple(arr.shape)}")
    return [[float(v) if math.isfinite(v) else None for v in row] for row in arr.tolist()]


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
        self.units[unit_key(method, metric, variant, step)] = _unit_table(values)

    def unit_values(self, method: str, metric: str, variant: str, step: int) -> np.ndarray:
        """The (S, N) float64 per-unit values of one curve point (NaN where undefined).

        ``KeyError`` when the result holds none for that point (e.g. a file written before
        per-unit values were stored).
        """
        key = unit_key(method, metric, variant, step)
        if key not in self.units:
            raise KeyError(f"no per-unit values {key!r} in this {self.benchmark} result")
        table = self.units[key]
        return np.array([[_nan(v) for v in row] for row in table], dtype=np.float64).reshape(
            len(table), -1
        )

    def has_units(self, method: str, metric: str, variant: str, step: int) -> bool:
        """Whether per-unit values are stored for that curve point."""
        return unit_key(method, metric, variant, step) in self.units

    def units_csv(self) -> str:
        """The per-unit values as a tidy CSV: one row per method, metric, variant, step, seed
        index and unit (image / test example) index; empty value for NaN."""
        columns = ["benchmark", "model", "method", "metric", "variant", "step", "seed", "unit"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*columns, "value"])
        for key, table in self.units.items():
            method, metric, variant, step = key.rsplit("/", 3)
            for s_index, row in enumerate(table):
                for u_index, v in enumerate(row):
                    writer.writerow(
                        [
                            self.benchmark,
                            self.model,
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
        columns = ["benchmark", "model", *(f.name for f in dataclasses.fields(CurvePoint))]
        return _csv(self.curve_rows(), columns)

    def scores_csv(self) -> str:
        columns = ["benchmark", "model", *(f.name for f in dataclasses.fields(Score))]
        return _csv(self.score_rows(), columns)

    def to_markdown(self, digits: int = 3) -> str:
        """A Markdown table: one row per method, one column per score, "mean ± std"."""
        names = self.score_names()
        header = ["method", *(self._column(n) for n in names)]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
        ]
        for method in self.methods:
            cells = [method]
            for name in names:
                try:
                    s = self.score(method, name)
                    cells.append(_fmt(s.mean, s.std, s.n, digits))
                except KeyError:
                    cells.append("")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def _column(self, name: str) -> str:
        better = next((s.better for s in self.scores if s.name == name and s.better), "")
        arrow = {"lower": " (↓)", "higher": " (↑)"}.get(better, "")
        return f"{name}{arrow}"

    # ---- files ------------------------------------------------------------------------------
    def to_json(self) -> str:
        payload = {
            "benchmark": self.benchmark,
            "model": self.model,
            "methods": self.methods,
            "settings": self.settings,
            "curves": [dataclasses.asdict(p) for p in self.curves],
            "scores": [dataclasses.asdict(s) for s in self.scores],
        }
        text = json.dumps(_json_safe(payload), indent=1)
        if not self.units:
            return text + "\n"
        # the per-unit tables are large: one compact line per key keeps the file readable
        lines = ",\n".join(
            f"  {json.dumps(k)}: {json.dumps(_json_safe(v), separators=(',', ':'))}"
            for k, v in self.units.items()
        )
        return text[: text.rindex("}")].rstrip() + ',\n "units": {\n' + lines + "\n }\n}\n"

    @classmethod
    def from_json(cls, text: str) -> BenchmarkResult:
        """The inverse of :meth:`to_json` (``examples`` are not stored)."""
        d = json.loads(text)
        curves = [
            CurvePoint(**{**p, "mean": _nan(p["mean"]), "std": _nan(p["std"])}) for p in d["curves"]
        ]
        scores = [
            Score(**{**s, "mean": _nan(s["mean"]), "std": _nan(s["std"])}) for s in d["scores"]
        ]
        units = {str(k): [list(row) for row in v] for k, v in d.get("units", {}).items()}
        return cls(
            d["benchmark"], d["model"], d["methods"], curves, scores, d["settings"], units=units
        )

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
