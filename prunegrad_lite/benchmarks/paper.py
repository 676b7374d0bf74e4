"""What the authors report (spec section 4), and a plain comparison of our numbers with theirs.

The authors' numbers come from their follow-up paper (ImageNet ResNet50 and CIFAR-10 ResNet8);
ours come from other models and data (Fashion-MNIST, EfficientNet-Lite0 on a few photographs),
so only the **qualitative** claims can be checked: who is below whom. Each claim is a
comparison written down here, before any result was looked at, and :func:`compare_with_paper`
says for each whether our run agrees, disagrees, or could not check it (a method not run).

Example
-------
>>> print(compare_with_paper({"pixel": pixel_result, "roar": roar_result}))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prunegrad_lite.benchmarks.results import BenchmarkResult

__all__ = [
    "CLAIMS",
    "PAPER_PIXEL",
    "PAPER_ROAR",
    "PAPER_ROAR_BASE_ACCURACY",
    "PAPER_SANITY",
    "Claim",
    "closing_table",
    "compare_with_paper",
    "paper_tables",
]

#: LeRF fractional output change at 1% / 10% removed (spec section 4), by data set
PAPER_PIXEL: dict[str, dict[str, tuple[float, float]]] = {
    "ImageNet, ResNet50": {
        "gradient": (0.32, 0.60),
        "guided_backprop": (0.26, 0.59),
        "grad_x_input": (0.31, 0.56),
        "integrated_gradients": (0.31, 0.53),
        "gradcam": (0.07, 0.13),
        "prunegrad": (0.05, 0.16),
    },
    "CIFAR-10": {
        "gradient": (0.22, 0.54),
        "integrated_gradients": (0.14, 0.25),
        "prunegrad": (0.04, 0.15),
    },
}
#: ROAR test accuracy (%) on CIFAR-10 at 10/30/50/70/90% removed
PAPER_ROAR: dict[str, tuple[float, ...]] = {
    "gradient": (79, 81, 83, 82, 76),
    "integrated_gradients": (81, 82, 83, 83, 81),
    "gradcam": (75, 70, 63, 58, 48),
    "prunegrad": (74, 68, 65, 58, 44),
}
PAPER_ROAR_BASE_ACCURACY = 84.4
#: the sanity-check claims (ResNet50), in words
PAPER_SANITY = (
    "Guided Backprop stays near 1 in Spearman rank correlation after the top layer is randomised "
    "(fails); PruneGrad falls like the plain gradient (passes)."
)

_GRADIENTS = ("gradient", "guided_backprop", "grad_x_input", "integrated_gradients")


@dataclass(frozen=True)
class Claim:
    """One qualitative claim of the paper, checked on our results.

    ``check`` returns ``(holds, evidence)`` or None when the methods it needs were not run.
    """

    benchmark: str
    text: str  # the claim as the paper makes it
    paper: str  # the authors' numbers behind it
    check: Callable[[BenchmarkResult], tuple[bool, str] | None]


def _get(result: BenchmarkResult, method: str, score: str) -> float | None:
    try:
        value = result.score(method, score).mean
    except KeyError:
        return None
    return value if math.isfinite(value) else None


def _below_all(score: str, others: tuple[str, ...], who: str = "prunegrad"):
    def check(result: BenchmarkResult) -> tuple[bool, str] | None:
        mine = _get(result, who, score)
        theirs = {m: _get(result, m, score) for m in others if m in result.methods}
        theirs = {m: v for m, v in theirs.items() if v is not None}
        if mine is None or not theirs:
            return None
        holds = all(mine < v for v in theirs.values())
        shown = ", ".join(f"{m} {v:.3f}" for m, v in theirs.items())
        return holds, f"{who} {mine:.3f} vs {shown}"

    return check


def _lowest_non_control(score: str):
    def check(result: BenchmarkResult) -> tuple[bool, str] | None:
        values = {  # controls aside: random, edge and ROAR's "{method}@other_class" rankings
            m: _get(result, m, score)
            for m in result.methods
            if m not in ("random", "edge") and "@" not in m
        }
        values = {m: v for m, v in values.items() if v is not None}
        if "prunegrad" not in values or len(values) < 2:
            return None
        best = min(values, key=values.__getitem__)
        return (
            best == "prunegrad",
            f"lowest: {best} {values[best]:.3f}; prunegrad {values['prunegrad']:.3f}",
        )

    return check


def _roar_every_fraction(result: BenchmarkResult) -> tuple[bool, str] | None:
    fractions = [n for n in result.score_names() if n.startswith("acc@")]
    others = [m for m in ("gradient", "integrated_gradients") if m in result.methods]
    if "prunegrad" not in result.methods or not others or not fractions:
        return None
    fails = [
        f"{n} ({m})"
        for n in fractions
        for m in others
        if not _get(result, "prunegrad", n) < _get(result, m, n)  # type: ignore[operator]
    ]
    return not fails, "below at every fraction" if not fails else "not below at " + ", ".join(fails)


def _sanity_gbp_high(result: BenchmarkResult) -> tuple[bool, str] | None:
    gbp, grad = (_get(result, m, "spearman_abs@top") for m in ("guided_backprop", "gradient"))
    if gbp is None or grad is None:
        return None
    return gbp > grad + 0.1, f"guided_backprop {gbp:.3f} vs gradient {grad:.3f} (margin 0.1)"


def _sanity_prunegrad_like_gradient(result: BenchmarkResult) -> tuple[bool, str] | None:
    pg, grad = (_get(result, m, "spearman_abs@top") for m in ("prunegrad", "gradient"))
    gbp = _get(result, "guided_backprop", "spearman_abs@top")
    if pg is None or grad is None:
        return None
    holds = abs(pg - grad) <= 0.15 and (gbp is None or pg < gbp)
    extra = "" if gbp is None else f", guided_backprop {gbp:.3f}"
    return holds, f"prunegrad {pg:.3f} vs gradient {grad:.3f} (|diff| <= 0.15){extra}"


def _sanity_edge_fails(result: BenchmarkResult) -> tuple[bool, str] | None:
    edge = _get(result, "edge", "spearman_abs@all")
    if edge is None:
        return None
    return edge > 0.99, f"edge {edge:.3f} after all layers (a weight-independent map must stay 1)"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "pixel",
        "LeRF at 1%: PruneGrad changes the output less than Gradient, Guided Backprop, "
        "Grad x Input and IG",
        "ImageNet 0.05 vs 0.32/0.26/0.31/0.31; CIFAR-10 0.04 vs 0.22 (Gradient), 0.14 (IG)",
        _below_all("lerf@1%", _GRADIENTS),
    ),
    Claim(
        "pixel",
        "LeRF at 10%: PruneGrad changes the output less than Gradient, Guided "
        "Backprop, Grad x Input and IG",
        "ImageNet 0.16 vs 0.60/0.59/0.56/0.53; CIFAR-10 0.15 vs 0.54, 0.25",
        _below_all("lerf@10%", _GRADIENTS),
    ),
    Claim(
        "pixel",
        "LeRF at 1%: PruneGrad is the lowest of all methods (controls aside)",
        "ImageNet 0.05 (Grad-CAM 0.07 next); CIFAR-10 0.04",
        _lowest_non_control("lerf@1%"),
    ),
    Claim(
        "pixel",
        "LeRF at 10%: Grad-CAM is lower than PruneGrad (the one place the paper "
        "has PruneGrad second)",
        "ImageNet 0.13 vs 0.16",
        _below_all("lerf@10%", ("prunegrad",), who="gradcam"),
    ),
    Claim(
        "roar",
        "PruneGrad's retrained accuracy is below Gradient's and IG's at every fraction",
        "CIFAR-10: 74/68/65/58/44 vs 79/81/83/82/76 and 81/82/83/83/81",
        _roar_every_fraction,
    ),
    Claim(
        "roar",
        "PruneGrad has the lowest ROAR area of all methods (controls aside)",
        "CIFAR-10: area (mean accuracy over 10-90%) 62.5 vs Grad-CAM 63.1, Gradient 80.9, IG 82.3",
        _lowest_non_control("roar_auc"),
    ),
    Claim(
        "roar",
        "PruneGrad's ROAR area is below the random-ranking control's",
        "not reported (no random control in the paper's table)",
        _below_all("roar_auc", ("random",)),
    ),
    Claim(
        "sanity",
        "Guided Backprop stays high after the top layer is randomised (fails)",
        "ResNet50: Spearman near 1",
        _sanity_gbp_high,
    ),
    Claim(
        "sanity",
        "PruneGrad falls like the plain gradient after the top layer (passes)",
        "ResNet50: qualitative",
        _sanity_prunegrad_like_gradient,
    ),
    Claim(
        "sanity",
        "(check of the benchmark itself) the edge control keeps similarity 1",
        "Adebayo et al.: edge detectors are independent of the weights",
        _sanity_edge_fails,
    ),
)


def paper_tables() -> str:
    """The authors' numbers as Markdown tables."""
    lines = [
        "**Pixel perturbation, LeRF fractional output change at 1% / 10% (lower is better)**",
        "",
        "| method | " + " | ".join(PAPER_PIXEL) + " |",
        "|---|" + "---|" * len(PAPER_PIXEL),
    ]
    methods = list(dict.fromkeys(m for table in PAPER_PIXEL.values() for m in table))
    for m in methods:
        cells = [f"{t[m][0]:.2f} / {t[m][1]:.2f}" if m in t else "" for t in PAPER_PIXEL.values()]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"**ROAR, CIFAR-10 test accuracy % (base {PAPER_ROAR_BASE_ACCURACY}%), "
        "10/30/50/70/90% removed (lower is better)**",
        "",
        "| method | 10% | 30% | 50% | 70% | 90% |",
        "|---|---|---|---|---|---|",
    ]
    for m, accs in PAPER_ROAR.items():
        lines.append(f"| {m} | " + " | ".join(f"{a:g}" for a in accs) + " |")
    lines += ["", f"**Sanity checks (ResNet50):** {PAPER_SANITY}", ""]
    return "\n".join(lines)


def compare_with_paper(results: Mapping[str, BenchmarkResult]) -> str:
    """A Markdown list: for each claim of the paper, whether our results agree, and the numbers.

    ``results`` maps a benchmark name ("pixel", "roar", "sanity") to its result on one model.
    """
    lines = []
    for claim in CLAIMS:
        result = results.get(claim.benchmark)
        outcome = None if result is None else claim.check(result)
        if outcome is None:
            verdict, evidence = "NOT CHECKED", "the methods it needs were not run"
        else:
            verdict = "AGREES" if outcome[0] else "DISAGREES"
            evidence = outcome[1]
        lines.append(
            f"- **{verdict}** ({claim.benchmark}) {claim.text}. Paper: {claim.paper}. "
            f"Ours: {evidence}."
        )
    return "\n".join(lines) + "\n"


def _cell(result: BenchmarkResult | None, method: str, score: str, digits: int = 3) -> str:
    if result is None:
        return ""
    try:
        s = result.score(method, score)
    except KeyError:
        return ""
    if not math.isfinite(s.mean):
        return "n/a"
    return f"{s.mean:.{digits}f} ± {s.std:.{digits}f}" if s.n > 1 else f"{s.mean:.{digits}f}"


def closing_table(results: Mapping[str, BenchmarkResult]) -> str:
    """One Markdown table per method across the three benchmarks (mean ± std).

    Columns: LeRF change at the smallest and largest fraction, ROAR accuracy at each fraction,
    Spearman |map| similarity after the top layer and after all layers (cascading).
    """
    pixel, roar, sanity = (results.get(k) for k in ("pixel", "roar", "sanity"))
    methods = list(dict.fromkeys(m for r in (pixel, roar, sanity) if r for m in r.methods))
    columns: list[tuple[str, BenchmarkResult | None, str]] = []
    if pixel is not None:
        columns += [
            (f"LeRF {n[5:]}", pixel, n) for n in pixel.score_names() if n.startswith("lerf@")
        ]
    if roar is not None:
        columns += [(f"ROAR {n[4:]}", roar, n) for n in roar.score_names() if n.startswith("acc@")]
    if sanity is not None:
        columns += [
            ("sanity top", sanity, "spearman_abs@top"),
            ("sanity all", sanity, "spearman_abs@all"),
        ]
    header = ["method", *(c[0] for c in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(_cell(r, m, n) for _, r, n in columns) + " |")
    return "\n".join(lines) + "\n"
