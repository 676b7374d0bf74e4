"""Speed and memory of PruneGrad against the plain gradient on the same batch and model.

Prints, for each case: the median time of PruneGrad and of the plain gradient (``Gradient``), their
ratio (goal <= 2.5), the time of the threshold step alone (``masks_from_scores``), the throughput
of the batched call against calling PruneGrad one sample at a time (goal >= 5x on batch 64), and
the peak memory of each method (CUDA: ``max_memory_allocated``; CPU: growth of the process's peak
resident set sampled every millisecond, each method in a fresh subprocess).

Usage::

    python perf/bench_prunegrad.py                 # all cases on the default device
    python perf/bench_prunegrad.py --case fashion  # one case
    python perf/bench_prunegrad.py --device cuda --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torchvision

import prunegrad_lite as pgl
from prunegrad_lite.attribution.pruning import masks_from_scores, neuron_scores


def build_case(name: str, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, float]:
    """(model in eval mode, input batch, sparsity) for one benchmark case."""
    gen = torch.Generator().manual_seed(0)
    if name == "fashion":
        try:
            model = pgl.load_model("fashion_mnist", device=device)
        except Exception as err:  # the shipped checkpoint may be missing in a partial checkout
            print(
                f"# shipped model unavailable ({err}); using a randomly initialised FashionResNet"
            )
            model = pgl.load_model("fashion_mnist", device=device, weights=None)
        x = torch.randn(64, 1, 28, 28, generator=gen)
        sparsity = pgl.PruneGrad(model).sparsity
    elif name == "vgg16":
        model = torchvision.models.vgg16(weights=None).eval()
        x = torch.randn(4, 3, 224, 224, generator=gen)
        sparsity = 0.9  # the authors' VGG16 value
    elif name == "resnet50":
        model = torchvision.models.resnet50(weights=None).eval()
        x = torch.randn(4, 3, 224, 224, generator=gen)
        sparsity = 0.7  # the authors' ResNet50 value
    else:
        raise ValueError(f"unknown case {name!r}")
    return model.to(device).eval(), x.to(device), sparsity


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_memory_mb(case: str, method: str, device: torch.device) -> float:
    """Extra peak memory (MB) of one call, measured in a fresh process."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-child",
            case,
            method,
            "--device",
            str(device),
            "--threads",
            str(torch.get_num_threads()),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["mb"]


def _memory_child(case: str, method: str, device: torch.device) -> None:
    model, x, sparsity = build_case(case, device)
    fn = {
        "gradient": lambda: pgl.Gradient(model).attribute(x),
        "prunegrad": lambda: pgl.PruneGrad(model, sparsity).attribute(x),
    }[method]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:  # CPU: sample the resident set every millisecond during the call
        import threading

        import psutil

        proc = psutil.Process()
        base = proc.memory_info().rss
        peak = [base]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            fn()
        finally:
            done.set()
            sampler.join()
        mb = (peak[0] - base) / 2**20
    print(json.dumps({"mb": mb}))


def run_case(case: str, device: torch.device, repeats: int, memory: bool) -> dict:
    model, x, sparsity = build_case(case, device)
    pg = pgl.PruneGrad(model, sparsity)
    grad = pgl.Gradient(model)
    t_grad = median_time(lambda: grad.attribute(x), device, repeats)
    t_pg = median_time(lambda: pg.attribute(x), device, repeats)
    scores = neuron_scores(model, x)
    t_thr = median_time(lambda: masks_from_scores(scores, sparsity), device, repeats)
    neurons = sum(s.numel for s in scores.sites)
    row = {
        "case": case,
        "device": str(device),
        "batch": x.shape[0],
        "input": tuple(x.shape[1:]),
        "sparsity": sparsity,
        "neurons_per_image": neurons,
        "gradient_s": t_grad,
        "prunegrad_s": t_pg,
        "ratio": t_pg / t_grad,
        "threshold_s": t_thr,
    }
    if x.shape[0] >= 16:  # batched against one sample at a time
        t_single = median_time(
            lambda: [pg.attribute(x[i : i + 1]) for i in range(x.shape[0])],
            device,
            max(1, repeats // 3),
        )
        row["batch1_loop_s"] = t_single
        row["batched_speedup"] = t_single / t_pg
    if memory:
        row["grad_peak_mb"] = peak_memory_mb(case, "gradient", device)
        row["prunegrad_peak_mb"] = peak_memory_mb(case, "prunegrad", device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=["fashion", "vgg16", "resnet50", "all"], default="all")
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    device = pgl.resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        _memory_child(*args.memory_child, device)
        return
    cases = ["fashion", "vgg16", "resnet50"] if args.case == "all" else [args.case]
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"cpu count {os.cpu_count()}"
    )
    for case in cases:
        row = run_case(case, device, args.repeats, not args.no_memory)
        print(json.dumps(row))
        msg = (
            f"{case}: batch {row['batch']}, {row['neurons_per_image']:,} neurons/image, "
            f"gradient {row['gradient_s'] * 1e3:.1f} ms, PruneGrad {row['prunegrad_s'] * 1e3:.1f} ms, "
            f"ratio {row['ratio']:.2f}, threshold step {row['threshold_s'] * 1e3:.1f} ms"
        )
        if "batched_speedup" in row:
            msg += f", batched vs batch-1 loop {row['batched_speedup']:.1f}x"
        if "grad_peak_mb" in row:
            msg += f", peak MB gradient {row['grad_peak_mb']:.0f} / PruneGrad {row['prunegrad_peak_mb']:.0f}"
        print(msg)


if __name__ == "__main__":
    main()
