"""``prunegrad-lite explain``: PruneGrad and other maps for predictions of a shipped model,
drawn side by side into one figure (:func:`~prunegrad_lite.explain.explain_examples`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunegrad_lite.cli.common import check_writable_file

HELP = "PruneGrad and other maps for shipped-model predictions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="fashion_mnist", choices=["fashion_mnist", "efficientnet_lite0"]
    )
    parser.add_argument(
        "--index",
        type=int,
        nargs="+",
        default=None,
        help="test-subset images to explain (fashion_mnist; default 0 1 2 3)",
    )
    parser.add_argument(
        "--photo",
        nargs="+",
        default=None,
        help="photographs to explain (efficientnet_lite0; default the colour object photos)",
    )
    parser.add_argument(
        "--methods",
        default="gradient,integrated_gradients,gradcam,prunegrad",
        help="comma-separated method names (see prunegrad_lite.METHODS)",
    )
    parser.add_argument(
        "--sparsity",
        type=float,
        default=None,
        help="PruneGrad sparsity in [0, 1) (default: the model's calibrated one)",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, ... (default: CUDA if available)"
    )
    parser.add_argument(
        "--out",
        default="prunegrad_maps.png",
        help="where to write the figure (.png added when the name has no extension; "
        "also .pdf, .svg, ...)",
    )


def run(args: argparse.Namespace) -> int:
    from matplotlib.figure import Figure

    from prunegrad_lite.explain import explain_examples

    out = check_writable_file(Path(args.out), suffix=".png")  # before any work
    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in formats:
        raise ValueError(
            f"--out {out}: matplotlib cannot write {out.suffix!r} files; "
            f"use one of {', '.join('.' + f for f in sorted(formats))}"
        )
    result = explain_examples(
        args.model,
        indices=args.index,
        photos=args.photo,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        sparsity=args.sparsity,
        device=args.device,
    )
    result.figure.savefig(out, dpi=120, bbox_inches="tight")
    print(result.explanation.layer_table(0))
    for n, label in enumerate(result.labels):
        ex = result.explanation
        print(
            f"image {n}: {label.splitlines()[0]}, pruned p={ex.pruned_prob[n].item():.2f}, "
            f"kept {ex.kept_fraction[n].item():.1%} of neurons"
        )
    print(f"wrote {out}")
    return 0
