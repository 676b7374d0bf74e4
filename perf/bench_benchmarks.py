"""How long ``prunegrad-lite reproduce`` takes: unit costs measured here, totals per preset.

Measures, on this machine and device, the cost of the operations the benchmarks are made of:

* attribution maps, per image, for every method a preset uses (``compute_maps`` on a batch);
* a forward pass per image (pixel perturbation's perturbed copies; ROAR's test evaluation);
* a ROAR training step per image and epoch with the preset's recipe (``train_model``).

and multiplies them by the work of each benchmark in a preset (images, stages, fractions,
seeds, cells) to estimate its wall time. Run it next to a measured ``reproduce`` run to check
the estimate (``--compare runs/quick/run.json``), then read off the estimate for "full".
Shared machines: the unit costs are only as good as the load while they were measured; the
load average is printed.

Usage::

    python perf/bench_benchmarks.py --weights data/fashion_resnet.pt
    python perf/bench_benchmarks.py --preset quick --compare runs/quick/run.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from prunegrad_lite.benchmarks.attribution_maps import compute_maps, predict
from prunegrad_lite.benchmarks.reproduce import PRESETS, Preset
from prunegrad_lite.data import load_dataset, load_photos
from prunegrad_lite.runtime import resolve_device
from prunegrad_lite.models import load_model
from prunegrad_lite.training import TrainConfig, train_model


def per_image(fn, n: int, repeats: int = 2) -> float:
    """Median seconds per image of ``fn()`` (which processes ``n`` images), after a warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / n


def fashion_costs(preset: Preset, weights: str, device: torch.device) -> dict[str, float]:
    model = load_model("fashion_mnist", device=device, weights=weights)
    x = load_dataset("fashion_mnist", "test").images[:64]
    methods = dict.fromkeys([*preset.methods, *preset.roar_methods])
    costs = {
        f"maps/{m}": per_image(lambda m=m: compute_maps(model, x, m, progress=False), 64)
        for m in methods
    }
    big = load_dataset("fashion_mnist", "test").images[:1000]
    costs["forward"] = per_image(lambda: predict(model, big, 1000), 1000)
    train = load_dataset("fashion_mnist", "train").subset(1000)
    recipe = TrainConfig(epochs=1, batch_size=preset.roar_batch_size)
    costs["train"] = per_image(lambda: train_model(train, None, recipe, device, False), 1000, 1)
    return costs


def imagenet_costs(preset: Preset, device: torch.device) -> dict[str, float]:
    model = load_model("efficientnet_lite0", device=device)
    x, _ = load_photos(["coffee", "chelsea"])
    methods = dict.fromkeys([*preset.methods, *(preset.imagenet_sanity_methods or ())])
    costs = {
        f"maps/{m}": per_image(
            lambda m=m: compute_maps(model, x, m, batch_size=8, progress=False), 2, 1
        )
        for m in methods
    }
    costs["forward"] = per_image(lambda: predict(model, x.repeat(4, 1, 1, 1), 8), 8, 1)
    return costs


def estimate(
    preset: Preset,
    fashion: dict[str, float],
    imagenet: dict[str, float] | None,
    fashion_stages: int,
    imagenet_stages: int,
) -> dict[str, float]:
    """Seconds per benchmark and model for ``preset`` from the unit costs."""
    p, out = preset, {}
    maps = sum(fashion[f"maps/{m}"] for m in p.methods)
    conditions = 2 * 10  # LeRF and MoRF at 10 fractions
    out["pixel/fashion_mnist"] = p.pixel_images * (
        maps + conditions * len(p.methods) * fashion["forward"]
    )
    out["sanity/fashion_mnist"] = p.sanity_images * (1 + 2 * fashion_stages) * maps
    n_train = p.roar_train or 10_000
    n_test = p.roar_test or 2_000
    cells = len(p.roar_seeds) * (1 + len(p.roar_fractions) * len(p.roar_methods))
    roar_maps = (n_train + n_test) * sum(fashion[f"maps/{m}"] for m in p.roar_methods)
    training = cells * p.roar_epochs * (n_train * fashion["train"] + n_test * fashion["forward"])
    out["roar/fashion_mnist"] = roar_maps + training
    if imagenet is not None:
        photos = p.photos or 7
        maps_i = sum(imagenet[f"maps/{m}"] for m in p.methods)
        san = p.imagenet_sanity_methods or p.methods
        out["pixel/efficientnet_lite0"] = photos * (
            maps_i + conditions * len(p.methods) * imagenet["forward"]
        )
        out["sanity/efficientnet_lite0"] = (
            photos * (1 + 2 * imagenet_stages) * sum(imagenet[f"maps/{m}"] for m in san)
        )
    out["total"] = sum(out.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="full")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-imagenet", action="store_true")
    parser.add_argument("--compare", type=Path, default=None, help="run.json of a measured run")
    args = parser.parse_args()
    device = resolve_device(args.device)
    preset = PRESETS[args.preset]
    load = os.getloadavg()[0]
    print(f"device {device}, {torch.get_num_threads()} threads, load average {load:.1f}")
    fashion = fashion_costs(preset, args.weights, device)
    imagenet = None if args.no_imagenet else imagenet_costs(preset, device)
    for name, costs in (("fashion_mnist", fashion), ("efficientnet_lite0", imagenet or {})):
        for key, value in costs.items():
            print(f"  {name:<20} {key:<30} {1000 * value:9.2f} ms per image")
    stages = {None: 10, 1: 5}[preset.sanity_depth]
    imagenet_stages = {1: 4, 2: 19}[preset.imagenet_sanity_depth]
    est = estimate(preset, fashion, imagenet, stages, imagenet_stages)
    measured = json.loads(args.compare.read_text())["seconds"] if args.compare else {}
    print(f"\nestimate for preset {preset.name!r} (load average now {os.getloadavg()[0]:.1f}):")
    for key, seconds in est.items():
        extra = f"   measured {measured[key]:.0f} s" if measured.get(key) is not None else ""
        print(f"  {key:<28} {seconds / 60:6.1f} min{extra}")


if __name__ == "__main__":
    main()
