"""The committed full run (``docs/results/``) and the prose that quotes it.

``summary.md`` must be what :func:`write_summary` rebuilds from the committed result files alone,
and every paired difference the README's benchmark section quotes (``+0.006 [+0.003, +0.010]``)
must be one that ``summary.md`` prints: a number in prose that no file backs fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from prunegrad_lite.benchmarks.summary import summary_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
INTERVAL = re.compile(r"([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]")


def _benchmark_section() -> str:
    readme = (ROOT / "README.md").read_text().replace("−", "-")
    start = readme.index("## The benchmarks")
    return readme[start : readme.index("\n## ", start + 1)]


def test_committed_summary_is_rebuilt_from_the_committed_files():
    committed = (RESULTS / "summary.md").read_text()
    assert committed == summary_text(RESULTS), (
        "docs/results/summary.md is not what the result files give: run "
        "`python -c \"import prunegrad_lite as pgl; pgl.benchmarks.write_summary('docs/results')\"`"
    )


def test_every_interval_the_readme_quotes_is_in_the_summary():
    quoted = INTERVAL.findall(_benchmark_section())
    assert len(quoted) >= 6, "the README's results should quote paired intervals"
    summary = (RESULTS / "summary.md").read_text()
    printed = set(INTERVAL.findall(summary))
    missing = [q for q in quoted if q not in printed]
    assert not missing, f"README intervals that docs/results/summary.md does not print: {missing}"


def test_every_table_row_the_readme_quotes_is_a_row_of_the_summary():
    """The README's result tables are copied from ``summary.md`` (rows, not retyped numbers)."""
    rows = [
        line.strip()
        for line in _benchmark_section().splitlines()
        if line.startswith("| ")
        and not line.startswith("| method")
        and any(c.isdigit() for c in line)
    ]
    assert rows, "the README's results should hold a table copied from summary.md"
    summary = {line.strip() for line in (RESULTS / "summary.md").read_text().splitlines()}
    missing = [r for r in rows if r not in summary]
    assert not missing, f"README table rows that docs/results/summary.md does not hold: {missing}"


@pytest.mark.parametrize(
    "stem", ["sanity_fashion_mnist", "pixel_fashion_mnist", "roar_fashion_mnist"]
)
def test_the_committed_results_hold_their_per_image_values(stem):
    import json

    payload = json.loads((RESULTS / f"{stem}.json").read_text())
    assert payload.get("units"), f"{stem}.json has no per-image values"


def test_the_readme_speed_paragraph_quotes_the_committed_bench_run():
    """Every ratio, memory factor and batching gain of the GPU section is in the bench's JSON."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## On a GPU")
    section = " ".join(readme[start : readme.index("\n## ", start + 1)].split())
    quoted, second, older = re.findall(r"docs/perf/(bench_prunegrad-[\w.-]+\.json)", section)
    runs = [json.loads((ROOT / "docs" / "perf" / n).read_text()) for n in (quoted, second, older)]
    cases, second_cases, older_cases = ({c["case"]: c for c in run["cases"]} for run in runs)

    def x(value: float) -> str:
        return f"{value:.2f}x"

    for case in ("fashion", "vgg16", "resnet50"):  # every run's ratios, 1 thread / 2 threads
        for run_cases in (cases, second_cases, older_cases):
            one, two = (t["ratio"] for t in run_cases[case]["timings"])
            assert f"{x(one)} / {x(two)}" in section, case
    spread = max(
        abs(a["ratio"] - b["ratio"])
        for case in ("fashion", "vgg16", "resnet50")
        for a, b in zip(cases[case]["timings"], second_cases[case]["timings"])
    )
    assert f"two idle runs differ by up to {spread:.1f}x" in section
    memory = [
        " / ".join(x(run_cases[c]["memory_ratio"]) for c in ("fashion", "vgg16", "resnet50"))
        for run_cases in (cases, second_cases)
    ]
    assert f"peak memory {memory[0]} and {memory[1]}" in section
    fashion = cases["fashion"]
    one = fashion["timings"][0]
    assert f"{one['threshold_s'] * 1e3:.1f} ms of {one['prunegrad_s'] * 1e3:.0f} ms" in section
    passes = (one["prunegrad_s"] - one["threshold_s"]) / one["gradient_s"]
    assert f"passes come to {passes:.2f}x" in section
    assert f"threshold to {one['threshold_s'] / one['gradient_s']:.2f}x" in section
    vgg = cases["vgg16"]["timings"][0]
    assert f"{vgg['threshold_s']:.2f} s of {vgg['prunegrad_s']:.1f} s on VGG16" in section
    for run_cases in (cases, second_cases):
        f = run_cases["fashion"]
        gains = f"{f['batched_speedup']:.1f}x (the gradient {f['grad_batched_speedup']:.1f}x)"
        assert gains in section
    assert f"takes {fashion['batch1_ratio']:.1f}x the gradient's time" in section
    assert fashion["batch1_ratio"] > fashion["timings"][1]["ratio"]  # "more than at batch 64"
