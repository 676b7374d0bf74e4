"""Speed and memory of PruneGrad against the plain gradient on the same batch and model (issue 15).

For each case it prints and saves:

* the median time of the plain gradient (``Gradient``: one forward and one backward pass; before
  commit edcf12a it also ran a no-grad forward to find the target, which made the ratios in
  the earlier bench files look better) and of PruneGrad, timed *interleaved*
  (gradient, PruneGrad, gradient, ...) so that a change in machine load hits both alike, and
  their ratio, at 1 thread and at torch's default thread count (CPU);
* the threshold step's share of the PruneGrad call (``masks_from_scores`` timed alone, on the
  scores of the same batch);
* the batched call against a loop of batch-1 calls (default thread count);
* the extra peak memory of one call of each method, each in a fresh process (CUDA:
  ``max_memory_allocated``; CPU: growth of the resident set sampled every millisecond), and
  PruneGrad's over the gradient's.

Goals (issue 15, on an idle 2-core CPU): ratio <= 2.3 on ``fashion`` at both thread counts,
<= 2.5 on ``vgg16``; batched >= 9x the batch-1 loop on ``fashion``; peak memory <= 1.5x the
gradient's. The batched speedup is printed beside the plain gradient's own (same loop, same
run): no method can gain more from batching than the network's passes do, so that is the
ceiling to read the 9x against, and PruneGrad's batch-1 time over the gradient's shows the
per-call overhead. Timings under load are not comparable between runs: the script records the load
average (and ``uptime``) in its JSON output, ``perf/out/bench_prunegrad-<time>.json``.

Usage::

    python perf/bench_prunegrad.py                     # all cases on the default device
    python perf/bench_prunegrad.py --case fashion      # one case
    python perf/bench_prunegrad.py --device cuda       # CUDA: vgg16/resnet50 at batch 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

import prunegrad_lite as pgl
from prunegrad_lite.attribution.pruning import masks_from_scores, neuron_scores
from prunegrad_lite.training import atomic_write

CASES = ("fashion", "vgg16", "resnet50")
GOAL_RATIO = {"fashion": 2.3, "vgg16": 2.5}
GOAL_BATCHED = 9.0
GOAL_MEMORY = 1.5
OUT_DIR = Path(__file__).resolve().parent / "out"


def build_case(
    name: str, device: torch.device, batch: int | None = None
) -> tuple[torch.nn.Module, torch.Tensor, float, str]:
    """(model in eval mode, input batch, sparsity, what the inputs are) for one case."""
    gen = torch.Generator().manual_seed(0)
    if name == "fashion":
        n = batch or 64
        try:
            model = pgl.load_model("fashion_mnist", device=device)
            x, inputs = pgl.load_dataset("fashion_mnist", split="test").images[:n], "test images"
        except Exception as err:  # the shipped files may be missing in a partial checkout
            print(f"# shipped model or data unavailable ({err}); random model and inputs")
            model = pgl.load_model("fashion_mnist", device=device, weights=None)
            x, inputs = torch.randn(n, 1, 28, 28, generator=gen), "random inputs, random weights"
        sparsity = pgl.PruneGrad(model).sparsity  # the shipped model's calibrated value
    elif name in ("vgg16", "resnet50"):
        n = batch or (32 if device.type == "cuda" else 4)
        model = getattr(torchvision.models, name)(weights=None)
        x, inputs = torch.randn(n, 3, 224, 224, generator=gen), "random inputs, random weights"
        sparsity = 0.9 if name == "vgg16" else 0.7  # the authors' values
    else:
        raise ValueError(f"unknown case {name!r}")
    return model.to(device).eval(), x.to(device), sparsity, inputs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(fns: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of each function, called in turn ``repeats`` times after one warm-up."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_memory_mb(case: str, method: str, device: torch.device, batch: int | None) -> float:
    """Extra peak memory (MB) of one call, measured in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-child", case, method, "--device", str(device)]
    cmd += ["--threads", str(torch.get_num_threads())]
    if batch:
        cmd += ["--batch", str(batch)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["mb"]


def _memory_child(case: str, method: str, device: torch.device, batch: int | None) -> None:
    model, x, sparsity, _ = build_case(case, device, batch)
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


def time_case(model, x, sparsity, device: torch.device, repeats: int) -> dict:
    """Gradient and PruneGrad interleaved, and the threshold step, at the current threads."""
    pg, grad = pgl.PruneGrad(model, sparsity), pgl.Gradient(model)
    t = interleaved_medians(
        {"gradient": lambda: grad.attribute(x), "prunegrad": lambda: pg.attribute(x)},
        device,
        repeats,
    )
    scores = neuron_scores(model, x)
    t_thr = interleaved_medians(
        {"threshold": lambda: masks_from_scores(scores, sparsity)}, device, repeats
    )["threshold"]
    return {
        "threads": torch.get_num_threads(),
        "gradient_s": t["gradient"],
        "prunegrad_s": t["prunegrad"],
        "ratio": t["prunegrad"] / t["gradient"],
        "threshold_s": t_thr,
        "threshold_share": t_thr / t["prunegrad"],
    }


def run_case(
    case: str, device: torch.device, repeats: int, memory: bool, batch: int | None
) -> dict:
    model, x, sparsity, inputs = build_case(case, device, batch)
    default_threads = torch.get_num_threads()
    row: dict = {
        "case": case,
        "device": str(device),
        "batch": x.shape[0],
        "input": list(x.shape[1:]),
        "inputs": inputs,
        "sparsity": sparsity,
        "neurons_per_image": sum(s.numel for s in neuron_scores(model, x[:1]).sites),
        "timings": [],
    }
    thread_counts = [1, default_threads] if device.type == "cpu" else [default_threads]
    for threads in dict.fromkeys(thread_counts):  # 1 thread, then the default (once if 1)
        torch.set_num_threads(threads)
        try:
            row["timings"].append(time_case(model, x, sparsity, device, repeats))
        finally:
            torch.set_num_threads(default_threads)
    if x.shape[0] > 1:  # batched against one sample at a time, PruneGrad and the gradient
        pg, grad = pgl.PruneGrad(model, sparsity), pgl.Gradient(model)
        t = interleaved_medians(
            {
                "batched": lambda: pg.attribute(x),
                "loop": lambda: [pg.attribute(x[i : i + 1]) for i in range(x.shape[0])],
                "grad_batched": lambda: grad.attribute(x),
                "grad_loop": lambda: [grad.attribute(x[i : i + 1]) for i in range(x.shape[0])],
            },
            device,
            max(1, repeats // 3),
        )
        row["batch1_loop_s"], row["batched_s"] = t["loop"], t["batched"]
        row["batched_speedup"] = t["loop"] / t["batched"]
        # the ceiling set by the network itself: how much the plain gradient gains by batching
        row["grad_batch1_loop_s"], row["grad_batched_s"] = t["grad_loop"], t["grad_batched"]
        row["grad_batched_speedup"] = t["grad_loop"] / t["grad_batched"]
        row["batch1_ratio"] = t["loop"] / t["grad_loop"]  # PruneGrad / gradient at batch 1
    if memory:
        row["grad_peak_mb"] = peak_memory_mb(case, "gradient", device, batch)
        row["prunegrad_peak_mb"] = peak_memory_mb(case, "prunegrad", device, batch)
        row["memory_ratio"] = row["prunegrad_peak_mb"] / max(row["grad_peak_mb"], 1e-9)
    return row


def _goal(ok: bool) -> str:
    return "meets goal" if ok else "MISSES goal"


def summary(row: dict) -> str:
    case = row["case"]
    lines = [
        f"{case}: batch {row['batch']} x {row['input']} ({row['inputs']}), sparsity "
        f"{row['sparsity']}, {row['neurons_per_image']:,} neurons/image"
    ]
    for t in row["timings"]:
        goal = GOAL_RATIO.get(case)
        verdict = f" ({_goal(t['ratio'] <= goal)} <= {goal})" if goal else ""
        lines.append(
            f"  {t['threads']} thread(s): gradient {t['gradient_s'] * 1e3:.1f} ms, PruneGrad "
            f"{t['prunegrad_s'] * 1e3:.1f} ms, ratio {t['ratio']:.2f}{verdict}; threshold step "
            f"{t['threshold_s'] * 1e3:.1f} ms = {t['threshold_share']:.0%} of the call"
        )
    if "batched_speedup" in row:
        speed = f"  batched vs batch-1 loop: {row['batched_speedup']:.1f}x"
        if case == "fashion":
            speed += f" ({_goal(row['batched_speedup'] >= GOAL_BATCHED)} >= {GOAL_BATCHED:g}x)"
        if "grad_batched_speedup" in row:
            speed += (
                f"; the plain gradient's: {row['grad_batched_speedup']:.1f}x (the network's own "
                f"batching gain); at batch 1 PruneGrad takes {row['batch1_ratio']:.2f}x the "
                "gradient's time"
            )
        lines.append(speed)
    if "memory_ratio" in row:
        lines.append(
            f"  extra peak memory: gradient {row['grad_peak_mb']:.0f} MB, PruneGrad "
            f"{row['prunegrad_peak_mb']:.0f} MB, {row['memory_ratio']:.2f}x "
            f"({_goal(row['memory_ratio'] <= GOAL_MEMORY)} <= {GOAL_MEMORY}x)"
        )
    return "\n".join(lines)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=None, help="override the case's batch")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="default torch threads")
    parser.add_argument("--out", default=None, help="JSON file (default: perf/out/...)")
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    device = pgl.resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        _memory_child(*args.memory_child, device, args.batch)
        return
    cases = list(CASES) if args.case == "all" else [args.case]
    header = {
        "torch": torch.__version__,
        "device": str(device),
        "default_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "repeats": args.repeats,
        "uptime_start": _uptime(),
        "loadavg_start": list(os.getloadavg()),
    }
    if device.type == "cuda":
        header["gpu"] = torch.cuda.get_device_name(device)
    print(f"# {json.dumps(header)}")
    rows = []
    for case in cases:
        row = run_case(case, device, args.repeats, not args.no_memory, args.batch)
        row["loadavg_after"] = list(os.getloadavg())
        rows.append(row)
        print(summary(row), flush=True)
    header["uptime_end"] = _uptime()
    out = (
        Path(args.out)
        if args.out
        else OUT_DIR / time.strftime("bench_prunegrad-%Y%m%d-%H%M%S.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:  # a killed run leaves no half-written file
        f.write(json.dumps({"header": header, "cases": rows}, indent=1).encode())
    print(f"# uptime at the end: {header['uptime_end']}\n# wrote {out}")


if __name__ == "__main__":
    main()
