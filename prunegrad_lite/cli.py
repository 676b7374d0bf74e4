"""Command-line interface: ``prunegrad-lite <command>`` (or ``python -m prunegrad_lite <command>``).

Each subcommand is a :class:`Command` in ``COMMANDS``: a function that adds its arguments and a
function that runs it and returns the exit code. Adding one is two small functions and one line.
Every error ends the command with one readable line on stderr and a non-zero exit code (1; 2 for
bad arguments, 130 when interrupted); an unexpected one (a bug, or an input nothing checked)
says so. ``--debug`` (before or after the command) or ``PRUNEGRAD_LITE_DEBUG=1`` prints the
traceback as well. Output paths (``--out``) are checked for writability before any work.

Example
-------
$ prunegrad-lite info
$ prunegrad-lite train --dataset fashion_mnist --full --epochs 4 --seed 0 --out runs/model.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

PROG = "prunegrad-lite"
DEBUG_ENV = "PRUNEGRAD_LITE_DEBUG"  # "1": print the traceback of an error as well


def check_writable_folder(folder: Path, option: str = "--out") -> Path:
    """Create ``folder`` if needed and prove it takes a file (a real write, not ``os.access``,
    which says yes to root even on a read-only mount); raise a ``ValueError`` saying why not."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file, not a folder: give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"{option} {folder}: cannot write there ({err.strerror or err}): "
            "give a folder you can write to"
        ) from err
    return folder


def check_writable_file(path: Path, option: str = "--out", suffix: str | None = None) -> Path:
    """The output file ``path`` (``suffix`` appended when it has none), its folder checked for
    writability and the file itself, when it exists, for being a writable file."""
    path = Path(path).expanduser()
    if path.is_dir():
        example = path / f"out{suffix or ''}"
        raise ValueError(f"{option} {path} is a folder: give a file such as {example}")
    if suffix and not path.suffix:
        path = path.with_name(path.name + suffix)
    check_writable_folder(path.parent, option)
    if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: cannot overwrite it: give another path")
    return path


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # returns the exit code


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


# --------------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------------


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _info(args: argparse.Namespace) -> int:
    import torchvision

    from prunegrad_lite import __version__
    from prunegrad_lite.data import REGISTRY, DataError, data_root, fetch
    from prunegrad_lite.device import resolve_device
    from prunegrad_lite.models import MODELS, weights_available

    print(f"prunegrad_lite {__version__}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}"
    )
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"device: {resolve_device()} (CUDA: {cuda})")
    print(f"data files (offline, root {data_root()}):")
    width = max(len(name) for name in [*REGISTRY, *MODELS]) + 2
    for name in REGISTRY:
        try:
            status = f"available at {fetch(name)}"
        except (DataError, OSError) as err:
            status = f"missing ({str(err).splitlines()[0]})"
        print(f"  {name:<{width}}{status}")
    print(f"models (weights offline; torchvision's cache is {torch.hub.get_dir()}/checkpoints):")
    for name, info in MODELS.items():
        try:
            status = "available" if weights_available(name) else "not available offline"
        except (ValueError, OSError, ImportError) as err:
            status = f"not available ({err})"
        print(f"  {name:<{width}}{status}: {info.weights_source}")
    return 0


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------

TRAINABLE = ("fashion_mnist",)  # datasets `train` knows; each trains a FashionResNet


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from prunegrad_lite.training import TrainConfig

    defaults = TrainConfig()
    parser.add_argument("--dataset", choices=TRAINABLE, default="fashion_mnist")
    parser.add_argument(
        "--full",
        action="store_true",
        help="full 60k/10k set from the system dataset folder (default: the shipped subset)",
    )
    parser.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    parser.add_argument("--lr", type=_positive_float, default=defaults.lr)
    parser.add_argument("--width", type=_positive_int, default=defaults.width)
    parser.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default=defaults.optimizer)
    parser.add_argument(
        "--schedule", choices=("onecycle", "cosine", "constant"), default=defaults.schedule
    )
    parser.add_argument("--no-augment", action="store_true", help="no random crop and flip")
    parser.add_argument(
        "--crop-padding",
        type=int,
        default=defaults.crop_padding,
        help="random crop padding in pixels (0: no crop)",
    )
    parser.add_argument(
        "--limit", type=_positive_int, default=None, help="train on the first N images only"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:0 (default: auto)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/fashion_resnet.pt"),
        help="checkpoint path; the training record goes next to it as .json",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


_THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")  # recorded with a run


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _floats(value: Any) -> list[float]:
    return [float(v) for v in torch.as_tensor(value, dtype=torch.float64).flatten().tolist()]


def _train(args: argparse.Namespace) -> int:
    from prunegrad_lite import __version__
    from prunegrad_lite.data import load_dataset
    from prunegrad_lite.device import resolve_device
    from prunegrad_lite.training import (
        TrainConfig,
        atomic_write,
        evaluate,
        save_checkpoint,
        train_model,
    )

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        schedule=args.schedule,
        augment=not args.no_augment,
        crop_padding=args.crop_padding,
        width=args.width,
        seed=args.seed,
    )
    device = resolve_device(args.device)
    if args.out.is_dir():
        raise ValueError(f"--out {args.out} is a folder: give a file such as {args.out / 'a.pt'}")
    check_writable_file(args.out)  # fail now rather than after training
    train = load_dataset(args.dataset, split="train", subset=not args.full)
    test = load_dataset(args.dataset, split="test", subset=not args.full)
    images, labels = train.images, train.labels  # (N, C, H, W), (N,)
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    which = "full" if args.full else "shipped subset"
    print(
        f"training FashionResNet(width={config.width}) on {len(images)} {args.dataset} images "
        f"({which}), epochs={config.epochs}, seed={config.seed}, device={device}"
    )
    load_start = round(os.getloadavg()[0], 2)  # other processes sharing the CPU, for the record
    result = train_model(
        (images, labels), test, config, device=device, progress=not args.no_progress
    )
    for h in result.history if args.no_progress else []:  # (the progress bars printed them)
        print(
            f"  epoch {h.epoch}: loss {h.loss:.4f}, train acc {h.train_accuracy:.4f}, "
            f"test acc {h.test_accuracy:.4f} ({h.seconds:.0f} s)"
        )
    accuracy = {f"test_{'full' if args.full else 'subset'}": result.test_accuracy}
    print(f"test accuracy: {result.test_accuracy:.4f} on {len(test.labels)} images ({which})")
    if args.full:  # also on the shipped 2k subset, the one tests and notebooks use
        sub = load_dataset(args.dataset, split="test", subset=True)
        accuracy["test_subset"] = evaluate(result.model, sub.images, sub.labels)
        print(f"test accuracy: {accuracy['test_subset']:.4f} on the shipped subset")
    print(f"wall time: {result.wall_time_s:.0f} s")

    argv = args.argv if args.argv is not None else sys.argv[1:]
    meta = {
        "architecture": {
            "class": "FashionResNet",
            "in_channels": int(images.shape[1]),
            "num_classes": config.num_classes,
            "width": config.width,
            "parameters": sum(p.numel() for p in result.model.parameters()),
        },
        "dataset": args.dataset,
        "full_dataset": bool(args.full),
        "num_train": len(images),
        "num_test": len(test.labels),
        "normalisation": {"mean": _floats(train.mean), "std": _floats(train.std)},
        "classes": list(train.classes),
        "config": dataclasses.asdict(config),
        "history": [dataclasses.asdict(h) for h in result.history],
        "accuracy": accuracy,
        "wall_time_s": round(result.wall_time_s, 1),
        "load_average_1min": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "environment": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
        "torch_version": torch.__version__,
        "prunegrad_lite_version": __version__,
        "python_version": platform.python_version(),
        "command": shlex.join([PROG, *argv]),
    }
    out = save_checkpoint(result.model, args.out, meta)
    record = {"checkpoint": out.name, "sha256": _sha256(out), "bytes": out.stat().st_size, **meta}
    record_path = out.with_suffix(".json")
    with atomic_write(record_path) as f:
        f.write((json.dumps(record, indent=2) + "\n").encode())
    print(f"wrote {out} (sha256 {record['sha256']}) and {record_path}")
    return 0


# --------------------------------------------------------------------------------------------------
# reproduce (the options and the run live in prunegrad_lite.benchmarks.reproduce)
# --------------------------------------------------------------------------------------------------


def _reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    from prunegrad_lite.benchmarks.reproduce import add_arguments

    add_arguments(parser)


def _reproduce(args: argparse.Namespace) -> int:
    from prunegrad_lite.benchmarks.reproduce import run_cli

    check_writable_folder(args.out)  # fail now rather than after the first benchmark

    return run_cli(args)


# --------------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------------


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
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


def _explain(args: argparse.Namespace) -> int:
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


# --------------------------------------------------------------------------------------------------
# The command table and the entry point
# --------------------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "info": Command(
        "versions, device, data files and models available offline", _info_arguments, _info
    ),
    "train": Command("train a FashionResNet with the package's recipe", _train_arguments, _train),
    "explain": Command(
        "PruneGrad and other maps for shipped-model predictions", _explain_arguments, _explain
    ),
    "reproduce": Command("the benchmarks, beside the paper", _reproduce_arguments, _reproduce),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="PruneGrad attribution and its benchmarks, for teaching."
    )
    debug_help = f"print the traceback of an error too (or set {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub_parser)
        sub_parser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help
        )
    return parser


def _one_line(err: BaseException) -> str:
    """The error as one readable line: its message (whitespace collapsed), else its type."""
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = repr(err.args[0])
    expected = isinstance(err, (ValueError, TypeError, OSError, ImportError, RuntimeError))
    if not text or not expected:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if not expected:
        text += f" (unexpected; rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 success, 1 failed, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed usage and the message (or the help)
        return stop.code if isinstance(stop.code, int) else 2
    args.argv = None if argv is None else list(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every error: one line (the traceback too with --debug)
        if debug:
            traceback.print_exc()
        print(f"{PROG} {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
