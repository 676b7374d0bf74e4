"""What the authors report (spec section 4), and our evidence on each of their claims.

**Source.** Every number here is from the authors' **CVPR 2021 follow-up** (Khakzar, Baselizadeh,
Khanduja, Rupprecht, Kim, Navab, "Neural Response Interpretation through the Lens of Critical
Pathways", CVPR 2021, where PruneGrad appears as "NeuronMCT"): ImageNet ResNet50 and CIFAR-10
ResNet8. They are **not** from the PruneGrad paper itself (arXiv 1911.11081), whose body is not
available offline. Ours come from other models and data (Fashion-MNIST, EfficientNet-Lite0 on a
few photographs), so only the **qualitative** claims can be checked: who is below whom.

Each claim below (:data:`CLAIMS`) was written down before any result was looked at, as a set of
paired comparisons with 95% bootstrap intervals and a three-valued verdict (AGREES, DISAGREES,
NOT RESOLVED, or NOT CHECKED): :mod:`.claims` says how a claim is checked.

Example
-------
>>> print(compare_with_paper({"pixel": pixel_result, "roar": roar_result}))
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prunegrad_lite.benchmarks.claims import (
    NOT_CHECKED,
    RESAMPLES,
    Claim,
    Comparison,
    Condition,
    Outcome,
    combine,
    compare,
    conditions,
    outcome_of,
    values_for,
    within,
)
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.benchmarks.stats import AGREES, DISAGREES, NOT_RESOLVED, bootstrap_interval

__all__ = [
    "CLAIMS",
    "NOT_CHECKED",
    "PAPER_PIXEL",
    "PAPER_ROAR",
    "PAPER_ROAR_BASE_ACCURACY",
    "PAPER_SANITY",
    "PAPER_SOURCE",
    "Claim",
    "Comparison",
    "Condition",
    "Outcome",
    "check_claims",
    "closing_table",
    "combine",
    "compare_with_paper",
    "conditions",
    "paper_table",
    "paper_tables",
]

#: where every number of this module comes from
PAPER_SOURCE = (
    "the authors' CVPR 2021 follow-up (Khakzar et al., \"Neural Response Interpretation through "
    'the Lens of Critical Pathways"), not arXiv 1911.11081'
)

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
_CONTROLS = ("random", "edge")


def _below_all(what: str, others: tuple[str, ...], who: str = "prunegrad"):
    def check(result: BenchmarkResult, cond: Condition) -> Outcome | None:
        return outcome_of([compare(result, who, o, what, "lower", cond) for o in others])

    return check


def _lowest_non_control(what: str):
    def check(result: BenchmarkResult, cond: Condition) -> Outcome | None:
        others = [  # ROAR's "{method}@other_class" rankings are controls too
            m for m in result.methods if m not in (*_CONTROLS, "prunegrad") and "@" not in m
        ]
        return outcome_of([compare(result, "prunegrad", o, what, "lower", cond) for o in others])

    return check


def _roar_every_fraction(result: BenchmarkResult, cond: Condition) -> Outcome | None:
    fractions = [n for n in result.score_names() if n.startswith("acc@")]
    others = [m for m in ("gradient", "integrated_gradients") if m in result.methods]
    return outcome_of(
        [compare(result, "prunegrad", m, n, "lower", cond) for n in fractions for m in others]
    )


def _sanity_gbp_high(result: BenchmarkResult, cond: Condition) -> Outcome | None:
    return outcome_of(
        [compare(result, "guided_backprop", "gradient", "spearman_abs@top", "higher", cond)]
    )


def _sanity_prunegrad_like_gradient(result: BenchmarkResult, cond: Condition) -> Outcome | None:
    like = within(result, "prunegrad", "gradient", "spearman_abs@top", 0.15, cond)
    if like is None:
        return None
    below = compare(result, "prunegrad", "guided_backprop", "spearman_abs@top", "lower", cond)
    return outcome_of([like, below])


def _sanity_edge_fails(result: BenchmarkResult, cond: Condition) -> Outcome | None:
    values = values_for(result, "edge", "spearman_abs@all", cond)
    if values is None:
        return None
    mean, low, high, n, seeds = bootstrap_interval(
        values - 0.99, resamples=RESAMPLES, seed=0, interval="percentile"
    )
    verdict = AGREES if low > 0 else DISAGREES if high < 0 else NOT_RESOLVED
    verdict = verdict if n >= 2 or seeds >= 2 else NOT_RESOLVED
    comp = Comparison(
        "edge", "0.99", "spearman_abs@all", "higher", mean, low, high, n, seeds, verdict
    )
    return Outcome(verdict, (comp,))


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
        "not reported (no random control in the follow-up's table)",
        _below_all("roar_auc", ("random",)),
    ),
    Claim(
        "sanity",
        "Guided Backprop stays high after the top layer is randomised (fails): its Spearman "
        "|map| similarity after the top stage is higher than the gradient's",
        "ResNet50: Spearman near 1",
        _sanity_gbp_high,
    ),
    Claim(
        "sanity",
        "PruneGrad falls like the plain gradient after the top layer (passes): its Spearman "
        "|map| similarity after the top stage is within ±0.15 of the gradient's and below "
        "Guided Backprop's",
        "ResNet50: qualitative",
        _sanity_prunegrad_like_gradient,
    ),
    Claim(
        "sanity",
        "(check of the benchmark itself) the edge control keeps similarity 1 (Spearman |map| "
        "above 0.99 after all stages)",
        "Adebayo et al.: edge detectors are independent of the weights",
        _sanity_edge_fails,
    ),
)


def check_claims(
    results: Mapping[str, BenchmarkResult],
) -> list[tuple[Claim, Condition, Outcome]]:
    """Every claim under every condition of its benchmark's result; NOT CHECKED where the
    benchmark was not run or the methods / per-unit values it needs are missing."""
    rows = []
    for claim in CLAIMS:
        result = results.get(claim.benchmark)
        if result is None:
            continue
        for cond in conditions(result):
            outcome = claim.check(result, cond)
            if outcome is None:
                outcome = Outcome(
                    NOT_CHECKED,
                    note="the methods it needs were not run, or the result has no per-unit values",
                )
            rows.append((claim, cond, outcome))
    return rows


def paper_table(benchmark: str) -> list[str]:
    """The authors' numbers of one benchmark ("pixel" or "roar") as the lines of a Markdown
    table (from their CVPR 2021 follow-up; :func:`paper_tables` and the course show them)."""
    if benchmark == "pixel":
        lines = [
            "| method | " + " | ".join(PAPER_PIXEL) + " |",
            "|---|" + "---|" * len(PAPER_PIXEL),
        ]
        methods = list(dict.fromkeys(m for table in PAPER_PIXEL.values() for m in table))
        for m in methods:
            cells = [
                f"{t[m][0]:.2f} / {t[m][1]:.2f}" if m in t else "" for t in PAPER_PIXEL.values()
            ]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        return lines
    if benchmark == "roar":
        lines = ["| method | 10% | 30% | 50% | 70% | 90% |", "|---|---|---|---|---|---|"]
        for m, accs in PAPER_ROAR.items():
            lines.append(f"| {m} | " + " | ".join(f"{a:g}" for a in accs) + " |")
        return lines
    raise ValueError(f"benchmark must be 'pixel' or 'roar', got {benchmark!r}")


def paper_tables() -> str:
    """The authors' numbers as Markdown tables (from their CVPR 2021 follow-up)."""
    lines = [
        "**Pixel perturbation, LeRF fractional output change at 1% / 10% (lower is better)**",
        "",
        *paper_table("pixel"),
        "",
        f"**ROAR, CIFAR-10 test accuracy % (base {PAPER_ROAR_BASE_ACCURACY}%), "
        "10/30/50/70/90% removed (lower is better)**",
        "",
        *paper_table("roar"),
        "",
        f"**Sanity checks (ResNet50):** {PAPER_SANITY}",
        "",
        f"Source of every number above: {PAPER_SOURCE}.",
        "",
    ]
    return "\n".join(lines)


def compare_with_paper(results: Mapping[str, BenchmarkResult]) -> str:
    """A Markdown list: for each claim of the follow-up paper and each condition, our verdict
    with the paired differences, their 95% intervals and n (NOT CHECKED for a benchmark that
    was not run).

    ``results`` maps a benchmark name ("pixel", "roar", "sanity") to its result on one model.
    """
    lines = []
    rows = check_claims(results)
    run = {claim.benchmark for claim, _, _ in rows}
    for claim in CLAIMS:
        if claim.benchmark not in run:
            lines.append(
                f"- **{NOT_CHECKED}** ({claim.benchmark}) {claim.text}. Follow-up paper: "
                f"{claim.paper}. Ours: the benchmark was not run."
            )
            continue
        for c, cond, outcome in rows:
            if c is not claim:
                continue
            where = f" [{cond.label}]" if cond.label else ""
            lines.append(
                f"- **{outcome.verdict}** ({claim.benchmark}){where} {claim.text}. "
                f"Follow-up paper: {claim.paper}. Ours: {outcome.evidence()}."
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
