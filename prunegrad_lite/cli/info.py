"""``prunegrad-lite info``: versions, device, and the data files and models available offline."""

from __future__ import annotations

import argparse
import platform

import torch

HELP = "versions, device, data files and models available offline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    import torchvision

    from prunegrad_lite.data import REGISTRY, DataError, data_root, fetch
    from prunegrad_lite.models import MODELS, weights_available
    from prunegrad_lite.runtime import __version__, resolve_device

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
