"""PruneGrad on ReLU6 (EfficientNet-Lite0): the diagnosis and the treatments, measured (issue 12).

Stages, each cached as JSON under ``--out`` (a killed run resumes at the first missing stage):

1. ``diagnosis``: the cause of every zero Taylor score and what pruning each class alone does
   (``pgl.diagnose_scores``), per photograph;
2. ``curve_<treatment>``: ``calibrate_sparsity`` (rule "first crossing", grid of 0.1) for every
   clip treatment: the whole probability-change curve, per photograph;
3. ``perturbation``: the cosine similarity of every map with the plain gradient's, and LeRF and
   MoRF (10% of the pixels, mean replacement) of the gradient, the random map, random pruning
   (at the sparsity of ``CHOSEN``), the spec at the old default 0.5 and each treatment at its
   calibrated sparsity, with paired 95% intervals (``paired_difference``) against the gradient
   and the random controls.

Run: ``nice -n 5 python -u perf/relu6_candidates.py --out /work/runs/h12/relu6``. The grid
(0.1) and the pixel fractions (10% only) are cut down so that it fits in about an hour on two
shared CPU cores; the README's benchmarks use the full protocol (1%..10%). ``--photos``
restricts the photographs (default: all of ``pgl.PHOTOS``); ``--markdown`` prints the tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import prunegrad_lite as pgl
from prunegrad_lite.attribution.relu6 import CLIP_TREATMENTS
from prunegrad_lite.attribution.relu6 import CAUSES, diagnose_scores
from prunegrad_lite.benchmarks.pixel_perturbation import (
    PixelPerturbationConfig,
    perturbation_curves,
)
from prunegrad_lite.benchmarks.results import write_text
from prunegrad_lite.benchmarks.stats import paired_difference

TREATMENTS = tuple(CLIP_TREATMENTS)  # spec, keep_active, straight_through, both
CHOSEN = "keep_active"  # the random-pruning control runs at this treatment's sparsity
FRACTIONS = (0.1,)


def _stage(out: Path, name: str, compute):
    path = out / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.time()
    value = compute()
    value["seconds"] = round(time.time() - t0, 1)
    write_text(path, json.dumps(value, indent=1))
    print(f"[{name}] {value['seconds']} s")
    return value


def diagnosis(model, x, names):
    d = diagnose_scores(model, x)
    return {
        "names": names,
        "fractions": {c: d.fractions[:, k].tolist() for k, c in enumerate(CAUSES)},
        "prob_change": {c: v.tolist() for c, v in d.prob_change.items()},
        "logit_change": {c: v.tolist() for c, v in d.logit_change.items()},
        "taylor_change": {c: v.tolist() for c, v in d.taylor_change.items()},
        "table": d.table(),
    }


def curve(model, x, treatment):
    scoring = "random" if treatment == "random" else "taylor"
    cal = pgl.calibrate_sparsity(
        model,
        x,
        scoring=scoring,
        clip_treatment="spec" if treatment == "random" else treatment,
        target_change=0.15,
        tol=0.02,
        grid=10,
    )
    print(treatment, cal.sparsity, round(cal.change, 4), "monotone" if cal.monotone else "")
    return {
        "sparsity": cal.sparsity,
        "change": cal.change,
        "monotone": cal.monotone,
        "curve": cal.evaluated,
        "per_sample": cal.per_sample,
        "table": cal.curve_table(),
    }


def _cos(a, b):
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)


def _method(model, name, calibrated):
    if name == "gradient":
        return pgl.Gradient(model)
    if name == "random":
        return pgl.RandomMap(model, seed=0)
    if name == "prunegrad_random":  # random pruning at the chosen treatment's sparsity
        return pgl.PruneGrad(model, sparsity=calibrated[CHOSEN]["sparsity"], scoring="random")
    treatment, _, level = name.removeprefix("prunegrad_").partition("@")
    sparsity = float(level) if level else calibrated[treatment]["sparsity"]
    return pgl.PruneGrad(model, sparsity=sparsity, clip_treatment=treatment)


def perturbation(model, x, name, calibrated, grad):
    """LeRF/MoRF at 10% and the cosine with the gradient's map, per photograph, for one method."""
    with torch.no_grad():
        target = model(x).argmax(1)
    config = PixelPerturbationConfig(fractions=FRACTIONS, forward_batch=64)
    maps = _method(model, name, calibrated).attribute(x, target)
    curves_ = perturbation_curves(
        model, x, maps, target, config, generator=torch.Generator().manual_seed(0)
    )  # (O, F, N)
    result = {
        f"{o}@{int(f * 100)}%": curves_[i, j].tolist()
        for i, o in enumerate(config.orders)
        for j, f in enumerate(config.fractions)
    }
    result["cosine"] = _cos(maps, grad).tolist()
    result["sparsity"] = getattr(_method(model, name, calibrated), "sparsity", None)
    print(name, {k: round(_mean(v), 3) for k, v in result.items() if isinstance(v, list)})
    return result


def comparisons(results: dict) -> dict:
    """Paired 95% intervals: every PruneGrad variant against the gradient, both controls and the
    spec's rule at its calibrated sparsity."""
    out = {}
    for name in results:
        if not name.startswith("prunegrad_") or name == "prunegrad_random":
            continue
        for other in ("gradient", "random", "prunegrad_random", "prunegrad_spec"):
            if other not in results or other == name:
                continue
            for metric, claim in (("lerf@10%", "lower"), ("morf@10%", "higher")):
                c = paired_difference(results[name][metric], results[other][metric])
                out[f"{name} vs {other} {metric}"] = {
                    **c.to_dict(),
                    "verdict": c.verdict(claim),
                    "claim": claim,
                }
    return out


def _mean(v):
    return sum(v) / len(v)


def markdown(out: Path) -> str:
    """The tables of docs/relu6.md, from the cached stages (whatever has finished)."""
    lines = []
    path = out / "diagnosis.json"
    if path.exists():
        d = json.loads(path.read_text())
        lines += [
            "| photograph | inactive | saturated | blocked | scored | prune inactive | "
            "prune saturated | prune blocked | prune all zero-score |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for i, name in enumerate(d["names"]):
            f, p = d["fractions"], d["prob_change"]
            lines.append(
                f"| {name} | "
                + " | ".join(f"{f[c][i]:.1%}" for c in CAUSES)
                + " | "
                + " | ".join(
                    f"{p[c][i]:.3f}" for c in ("inactive", "saturated", "blocked", "zero score")
                )
                + " |"
            )
        f, p = d["fractions"], d["prob_change"]
        lines.append(
            "| **mean** | "
            + " | ".join(f"{_mean(f[c]):.1%}" for c in CAUSES)
            + " | "
            + " | ".join(
                f"{_mean(p[c]):.3f}" for c in ("inactive", "saturated", "blocked", "zero score")
            )
            + " |"
        )
        lines.append("")
    curves_ = {
        t: json.loads((out / f"curve_{t}.json").read_text())
        for t in TREATMENTS
        if (out / f"curve_{t}.json").exists()
    }
    if curves_:
        levels = sorted({s for c in curves_.values() for s, _ in c["curve"] if round(s, 1) == s})
        lines += [
            "| treatment | " + " | ".join(f"{s:g}" for s in levels) + " | calibrated | "
            "images whose change falls by > 0.05 somewhere |",
            "|---|" + "---|" * (len(levels) + 2),
        ]
        for t, c in curves_.items():
            curve = dict(c["curve"])
            per = dict((s, v) for s, v in c["per_sample"])
            grid = [s for s in levels if s in per]
            n = len(per[grid[0]])
            falls = sum(
                any(per[b][i] < per[a][i] - 0.05 for a, b in zip(grid, grid[1:])) for i in range(n)
            )
            lines.append(
                f"| {t} | "
                + " | ".join(f"{curve[s]:.3f}" for s in levels)
                + f" | {c['sparsity']:g} ({c['change']:.3f}) | {falls} of {n} |"
            )
        lines.append("")
    results = {
        p.stem.removeprefix("pert_"): json.loads(p.read_text())
        for p in sorted(out.glob("pert_*.json"))
    }
    if results:
        lines += [
            "| method | sparsity | LeRF 10% (lower is better) | MoRF 10% (higher is better) | "
            "cosine with the gradient: mean (min-max) |",
            "|---|---|---|---|---|",
        ]
        for name, r in results.items():
            cos = r["cosine"]
            lines.append(
                f"| {name} | {r['sparsity'] if r['sparsity'] is not None else ''} | "
                f"{_mean(r['lerf@10%']):.3f} | {_mean(r['morf@10%']):.3f} | "
                f"{_mean(cos):.3f} ({min(cos):.3f}-{max(cos):.3f}) |"
            )
        lines += [
            "",
            "| comparison (a - b) | difference [95% interval] | n | verdict on the claim |",
            "|---|---|---|---|",
        ]
        for key, comp in comparisons(results).items():
            lines.append(
                f"| {key} | {comp['difference']:+.3f} [{comp['low']:+.3f}, {comp['high']:+.3f}] "
                f"| {comp['n']} | a {comp['claim']}: {comp['verdict']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/relu6")
    parser.add_argument("--photos", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="print the tables and stop")
    parser.add_argument("--treatments", nargs="*", default=list(TREATMENTS))
    parser.add_argument(
        "--methods", nargs="*", default=None, help="e.g. gradient prunegrad_spec@0.5"
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown(Path(args.out)))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = pgl.load_model("efficientnet_lite0", device="cpu")
    x, names = pgl.load_photos(args.photos)
    print(f"{len(names)} photographs: {', '.join(names)}")
    if not args.methods:
        d = _stage(out, "diagnosis", lambda: diagnosis(model, x, names))
        print(d["table"])
    c = {}
    for treatment in args.treatments:
        c[treatment] = _stage(out, f"curve_{treatment}", lambda t=treatment: curve(model, x, t))
        print(f"--- {treatment}\n{c[treatment]['table']}")
    methods = args.methods or [
        "gradient",
        "random",
        "prunegrad_spec@0.5",
        *[f"prunegrad_{t}" for t in c],
        "prunegrad_random",
    ]
    grad = None
    for name in methods:
        if (out / f"pert_{name}.json").exists():
            continue
        if grad is None:
            grad = pgl.Gradient(model).attribute(x)
        _stage(out, f"pert_{name}", lambda n=name, g=grad: perturbation(model, x, n, c, g))
    print(markdown(out))


if __name__ == "__main__":
    main()
