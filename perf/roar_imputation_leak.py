"""Does ROAD's noisy linear imputation hide *where* ROAR removed pixels on Fashion-MNIST?

For the shipped FashionResNet's maps (PruneGrad, gradient, the edge control) on the shipped
Fashion-MNIST test images, the top 10% / 50% of pixels are removed and replaced by the mean
colour (ROAR, Hooker et al. 2019) or by noisy linear imputation (ROAD, Rong et al. 2022). A small
fully convolutional detector (:func:`prunegrad_lite.benchmarks.roar_leak.removal_detectability`)
is trained on half the modified images to find the removed pixels, and tested on the other
half: balanced accuracy 0.5 means the mask is hidden, 1 that it is fully visible. When it is
visible, the class the mask carries (ROAR's mask-only control) reaches the retrained network.

Usage::

    python perf/roar_imputation_leak.py --out docs/results      # ~minutes on 2 idle cores
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from prunegrad_lite.benchmarks.attribution_maps import compute_maps, predict
from prunegrad_lite.benchmarks.removal import rank_pixels, removal_masks
from prunegrad_lite.benchmarks.results import write_text
from prunegrad_lite.benchmarks.roar_leak import removal_detectability
from prunegrad_lite.data import load_dataset
from prunegrad_lite.models import load_model, model_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/roar_leak"))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    model = load_model("fashion_mnist").eval()
    test = load_dataset("fashion_mnist", "test")
    images = test.images[: args.images]
    target = predict(model, images, 512).argmax(1)
    sparsity = model_info("fashion_mnist").default_sparsity
    rows = []
    for method in ("prunegrad", "gradient", "edge"):
        options = {"sparsity": sparsity} if method == "prunegrad" and sparsity else {}
        maps = compute_maps(
            model, images, method, options=options, target=target, progress=False, seed=args.seed
        )
        rank = rank_pixels(maps, torch.Generator().manual_seed(args.seed))
        for fraction in (0.1, 0.5):
            removed = removal_masks(rank, [fraction], "morf", images.shape[2:])[0].unsqueeze(1)
            for how in ("mean", "noisy_linear"):
                d = removal_detectability(
                    images, removed, replacement=how, epochs=args.epochs, seed=args.seed
                )
                rows.append({"method": method, "fraction": fraction} | d.to_dict())
                print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()
    record = {
        "what": "balanced accuracy of a per-pixel detector of removed pixels on held-out images",
        "images": len(images),
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average": [round(v, 2) for v in load],
        "rows": rows,
    }
    write_text(args.out / "roar_imputation_leak.json", json.dumps(record, indent=1) + "\n")
    lines = [
        "| method | removed | mean fill (ROAR) | noisy linear (ROAD) |",
        "|---|---|---|---|",
    ]
    for method in ("prunegrad", "gradient", "edge"):
        for fraction in (0.1, 0.5):
            acc = {
                r["replacement"]: r["balanced_accuracy"]
                for r in rows
                if r["method"] == method and r["fraction"] == fraction
            }
            lines.append(
                f"| {method} | {fraction:.0%} | {acc['mean']:.3f} | {acc['noisy_linear']:.3f} |"
            )
    text = (
        "Balanced accuracy of a detector of removed pixels (0.5: hidden, 1: fully visible), "
        f"{len(images)} Fashion-MNIST test images, half train / half test, {args.epochs} "
        f"epochs; {record['seconds']:.0f} s at load {load[0]:.1f}.\n\n" + "\n".join(lines) + "\n"
    )
    write_text(args.out / "roar_imputation_leak.md", text)
    print(text)


if __name__ == "__main__":
    main()
