"""``prunegrad-lite train``: train a FashionResNet with the package's recipe and save it with its
record (:func:`~prunegrad_lite.training.checkpoint_meta`) beside it."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from prunegrad_lite.cli.common import PROG, check_writable_file

HELP = "train a FashionResNet with the package's recipe"
TRAINABLE = ("fashion_mnist",)  # datasets `train` knows; each trains a FashionResNet


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from prunegrad_lite.data import load_dataset
    from prunegrad_lite.runtime import resolve_device
    from prunegrad_lite.training import (
        TrainConfig,
        checkpoint_meta,
        evaluate,
        save_with_record,
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
    meta = checkpoint_meta(
        result,
        train,
        dataset=args.dataset,
        full=args.full,
        num_test=len(test.labels),
        accuracy=accuracy,
        load_start=load_start,
        device=device,
        command=shlex.join([PROG, *argv]),
    )
    out, record_path, record = save_with_record(result.model, args.out, meta)
    print(f"wrote {out} (sha256 {record['sha256']}) and {record_path}")
    return 0
