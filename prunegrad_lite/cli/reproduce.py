"""``prunegrad-lite reproduce``: its options, and the run
(:func:`~prunegrad_lite.benchmarks.reproduce.reproduce`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prunegrad_lite.cli.common import check_writable_folder

HELP = "the benchmarks, beside the paper"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``reproduce`` options on an ``argparse`` parser."""
    from prunegrad_lite.benchmarks.presets import (
        BENCHMARKS,
        DEFAULT_METHODS,
        PRESETS,
        REPRODUCE_MODELS,
        SMOKE_ENV,
    )

    parser.add_argument(
        "--benchmark",
        nargs="+",
        choices=(*BENCHMARKS, "all"),
        default=["all"],
        help="one or more benchmarks (default: all)",
    )
    parser.add_argument(
        "--model",
        choices=(*REPRODUCE_MODELS, "all"),
        default="all",
        help="default: all = fashion_mnist and efficientnet_lite0 (offline); ROAR runs on "
        "fashion_mnist and cifar10_resnet8 (needs CIFAR-10 in the data folder; trains the "
        "explained ResNet-8 once); resnet50 and vgg16 need torchvision's cached ImageNet weights",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help="attribution methods, space or comma separated (default: the preset's: "
        + ", ".join(DEFAULT_METHODS)
        + "; ROAR: "
        + ", ".join(PRESETS["full"].roar_methods)
        + ")",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the quick preset (minutes on a CPU); {SMOKE_ENV}=1 selects the smoke preset",
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help="full (default), quick, smoke, or paper (the authors' ROAR grid: use with "
        "--model cifar10_resnet8 --benchmark roar on a GPU with CIFAR-10 in the data folder)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:0 (default: auto)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/reproduce"), help="output folder (cache inside)"
    )
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument(
        "--weights",
        default="default",
        help="Fashion-MNIST checkpoint (default: the shipped data/fashion_resnet.pt)",
    )
    parser.add_argument(
        "--imagenet-folder",
        type=Path,
        default=None,
        help="ImageNet-style folder (<class>/<image>) for the ImageNet models instead of the "
        "offline photographs (19, shipped inside scikit-image, scikit-learn and matplotlib)",
    )
    parser.add_argument(
        "--imagenet-images", type=int, default=1000, help="images drawn from it (default 1000)"
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where the benchmarks' cells (ROAR's retrainings, pixel perturbation's methods, the "
        "sanity checks' steps) run: local (default, this process) or ray (each cell a Ray task; "
        "needs pip install prunegrad-lite[distributed]; see docs/distributed.md)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="with --executor ray: the Ray cluster (e.g. 10.0.0.1:6379 or auto; default: start a "
        "local Ray instance on this machine)",
    )
    parser.add_argument(
        "--cpus-per-cell",
        type=int,
        default=1,
        help="with --executor ray: CPUs (and torch threads) of each cell's task (default 1; "
        "on CUDA every task also takes one GPU)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``reproduce`` from parsed arguments; print where the summary is; return 0."""
    from prunegrad_lite.benchmarks.executor import CellsFailed, make_executor
    from prunegrad_lite.benchmarks.reproduce import reproduce

    check_writable_folder(args.out)  # fail now rather than after the first benchmark
    methods = None
    if args.methods is not None:
        methods = [m for item in args.methods for m in item.split(",") if m]
    name = getattr(args, "executor", "local")
    cpus = {"cpus_per_cell": getattr(args, "cpus_per_cell", 1)} if name == "ray" else {}
    with make_executor(name, getattr(args, "address", None), device=args.device, **cpus) as ex:
        try:
            report = reproduce(
                benchmarks=args.benchmark,
                models=args.model,
                methods=methods,
                quick=args.quick,
                preset=getattr(args, "preset", None),
                device=args.device,
                out=args.out,
                seed=args.seed,
                progress=not args.no_progress,
                weights=args.weights,
                imagenet_folder=args.imagenet_folder,
                imagenet_images=args.imagenet_images,
                executor=ex,
            )
        except CellsFailed as failed:  # every other cell and result is saved: name them all
            print(f"{failed}", file=sys.stderr)
            return 1
    print(f"preset {report.preset.name}: {report.seconds.get('total', 0):.0f} s ({ex.name})")
    for note in report.notes:
        print(f"  {note}")
    print(f"wrote {report.summary_path} and the figures and tables next to it")
    return 0
