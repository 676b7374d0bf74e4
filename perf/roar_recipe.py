"""Does a ROAR retraining recipe converge? Train the unmodified-image reference and its 3x longer run.

ROAR (``prunegrad_lite.benchmarks.roar``) retrains every cell with one recipe; a recipe
*converges* when the same recipe trained three times longer gains at most 1.5 points of test
accuracy on unmodified images (mean over seeds). This script trains exactly what ``roar()``
trains for its reference cells (RoarNet, the shipped 10k training subset minus the same seeded
10% validation split, the best-validation checkpoint, the 2k shipped test images) for one
candidate recipe and its 3x longer run, for each seed, and prints one JSON line per training
with the test accuracy, the wall time and the load average before and after. Only unmodified
images are used: the recipe is chosen on the reference alone, never on a method's result.

Usage::

    python perf/roar_recipe.py --epochs 10 --width 16 --seeds 0 1 --longer 3 >> runs/recipe.jsonl
    # collect the candidates and a reproduce run's reference cells into one record:
    python perf/roar_recipe.py --collect runs/*.jsonl --cache RUN/cache \
        --out docs/results/roar_recipe_convergence.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch

from prunegrad_lite.benchmarks.roar_inputs import validation_split as _validation_split
from prunegrad_lite.benchmarks.roar_models import RoarNet
from prunegrad_lite.data import load_dataset
from prunegrad_lite.training import TrainConfig, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--longer", type=int, default=3, help="also train this many times longer")
    parser.add_argument("--only-longer", action="store_true", help="train only the longer runs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--collect", nargs="+", default=None, help="candidate JSONL files")
    parser.add_argument("--cache", default=None, help="a reproduce run's cache folder")
    parser.add_argument("--out", default=None, help="where --collect writes its JSON")
    args = parser.parse_args()
    if args.collect is not None:
        collect(args.collect, args.cache, args.out)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    train, test = load_dataset("fashion_mnist", "train"), load_dataset("fashion_mnist", "test")
    fit, val = _validation_split(len(train.images), 0.1, 0)  # what roar() holds out (seed 0)
    x_fit, y_fit = train.images[fit], train.labels[fit]
    validation = (train.images[val], train.labels[val])
    factors = ([] if args.only_longer else [1]) + ([args.longer] if args.longer > 1 else [])
    for seed in args.seeds:
        for factor in factors:
            recipe = TrainConfig(
                epochs=args.epochs * factor,
                batch_size=args.batch_size,
                lr=args.lr,
                weight_decay=args.weight_decay,
                hflip=not args.no_flip,
                width=args.width,
                seed=seed,
            )
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            result = train_model(
                (x_fit, y_fit),
                (test.images, test.labels),
                recipe,
                device="cpu",
                progress=False,
                model_fn=lambda: RoarNet(1, 10, args.width),
                validation=validation,
            )
            row = {
                "epochs": recipe.epochs,
                "base_epochs": args.epochs,
                "factor": factor,
                "width": args.width,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "weight_decay": args.weight_decay,
                "hflip": recipe.hflip,
                "seed": seed,
                "test_accuracy": result.test_accuracy,
                "validation_accuracy": max(h.validation_accuracy for h in result.history),
                "best_epoch": result.best_epoch,
                "seconds": round(time.perf_counter() - t0, 1),
                "seconds_per_epoch": round((time.perf_counter() - t0) / recipe.epochs, 2),
                "threads": torch.get_num_threads(),
                "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2),
                "utc": time.strftime("%H:%M:%S", time.gmtime()),
            }
            print(json.dumps(row), flush=True)


def collect(files: list[str], cache: str | None, out: str | None) -> None:
    """One JSON record: every candidate measured (the JSONL rows) and, from a ``reproduce`` run
    of the full preset, its reference cells (unmodified images) and their 3x longer runs."""
    from pathlib import Path

    from prunegrad_lite.benchmarks.reproduce import PRESETS, roar_config
    from prunegrad_lite.benchmarks.roar import recipe_hash

    rows = [json.loads(line) for f in files for line in Path(f).read_text().splitlines() if line]
    record: dict = {"candidates": rows}
    if cache is not None:
        full = PRESETS["full"]
        config = roar_config(full, full.roar_methods)
        recipe = recipe_hash(config.recipe, config)
        refs = {}
        for variant in ("none", "none.longer"):
            for path in sorted(Path(cache).glob(f"roar/*/{variant}/t0.0000_s*_{recipe}.json")):
                cell = json.loads(path.read_text())
                refs.setdefault(variant, {})[cell["seed"]] = {
                    "test_accuracy": cell["test_accuracy"],
                    "validation_accuracy": cell["validation_accuracy"],
                    "best_epoch": cell["best_epoch"],
                    "epochs": cell["recipe"]["epochs"],
                    "wall_time_s": round(cell["wall_time_s"], 1),
                }
        base = [refs["none"][s]["test_accuracy"] for s in config.seeds]
        longer = [refs["none.longer"][s]["test_accuracy"] for s in config.seeds]
        record["full_preset"] = {
            "recipe": dataclasses.asdict(config.recipe),
            "recipe_hash": recipe,
            "seeds": list(config.seeds),
            "reference_accuracy": base,
            "reference_accuracy_3x_longer": longer,
            "gap_points": round(100 * (sum(longer) / len(longer) - sum(base) / len(base)), 2),
            "cells": refs,
        }
    text = json.dumps(record, indent=1) + "\n"
    if out is None:
        print(text)
    else:
        Path(out).write_text(text)


if __name__ == "__main__":
    main()
