"""Time of every registered attribution method on one batch, against the plain gradient.

For each method of ``METHODS`` (default options: IG 50 steps, SmoothGrad 25 samples, PruneInt
11 alphas, ...): one warm-up call, then the median of ``--repeats`` timed calls of
``METHODS[name](model).attribute(x)`` on a batch of ``--batch`` Fashion-MNIST-sized inputs
(N, 1, 28, 28), printed as a table of milliseconds and the ratio to ``gradient``. The repeats
are interleaved across methods, so a change of machine load affects all of them alike.

The model is the shipped Fashion-MNIST model (``load_model("fashion_mnist")``). When its trained
weights are not available the same architecture with random weights is timed (the cost of every
method does not depend on the weights), and when the model registry itself is missing, a
torchvision ResNet-18 with one input channel stands in; the first line printed says which.

Usage::

    python perf/bench_methods.py                          # batch 64, 5 repeats, default device
    python perf/bench_methods.py --methods gradient prunegrad gradcam --repeats 10
    python perf/bench_methods.py --model resnet18 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from torch import nn

from prunegrad_lite.attribution.registry import METHODS
from prunegrad_lite.runtime import resolve_device


def build_model(which: str, device: torch.device) -> tuple[nn.Module, str]:
    """The model to time and a line saying what it is."""
    if which == "fashion_mnist":
        try:
            from prunegrad_lite.models import load_model
        except ImportError as err:
            print(f"# model registry unavailable ({err}); falling back to the ResNet-18 stand-in")
        else:
            try:
                return load_model("fashion_mnist", device=device), "shipped Fashion-MNIST model"
            except Exception as err:  # weights not shipped yet: time the architecture
                model = load_model("fashion_mnist", device=device, weights=None)
                return model, f"Fashion-MNIST architecture, RANDOM weights ({type(err).__name__})"
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)  # 1 input channel
    return model.to(device).eval(), "STAND-IN: torchvision resnet18, 1 input channel, random"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_methods(
    names: list[str], model: nn.Module, x: torch.Tensor, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median milliseconds of one ``attribute`` call per method, after one warm-up call each.

    The repeats are interleaved (every method once per round), so a machine whose load changes
    during the run slows all methods alike and the ratios stay meaningful.
    """
    methods = {name: METHODS[name](model) for name in names}
    for method in methods.values():
        method.attribute(x)  # warm-up: allocations, lazy imports, cuDNN autotuning
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name, method in methods.items():
            _sync(device)
            start = time.perf_counter()
            method.attribute(x)
            _sync(device)
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("fashion_mnist", "resnet18"), default="fashion_mnist")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, what = build_model(args.model, device)
    x = torch.randn(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    names = ["gradient"] + [n for n in args.methods if n != "gradient"]
    print(f"# {what}; batch {args.batch} x 1 x 28 x 28; device {device}; ", end="")
    print(f"{torch.get_num_threads()} CPU threads; median of {args.repeats} after 1 warm-up")
    medians = time_methods(names, model, x, args.repeats, device)
    print(f"{'method':<22} {'ms':>10} {'x gradient':>11}")
    for name in names:
        ms = medians[name]
        print(f"{name:<22} {ms:>10.1f} {ms / medians['gradient']:>11.2f}")


if __name__ == "__main__":
    main()
