"""Models: the shipped Fashion-MNIST ResNet and the ImageNet models, behind one registry.

``load_model(name)`` returns a model in ``eval()`` mode on the requested device; ``model_info(name)``
says what it expects (input shape, preprocessing, where its class names come from).

============================ =====================================================================
module                       what it holds
============================ =====================================================================
:mod:`.fashion_resnet`       the shipped network: :class:`FashionResNet` and its :class:`BasicBlock`
:mod:`.registry`             :data:`MODELS`: each model's builder, input, preprocessing, sparsity
:mod:`.loading`              :func:`load_model` with trained weights, :func:`weights_available`
============================ =====================================================================

Example
-------
>>> model = load_model("fashion_mnist", weights=None)    # random init, no files needed
>>> model(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from prunegrad_lite.models.fashion_resnet import BasicBlock, FashionResNet
from prunegrad_lite.models.loading import WeightsUnavailableError, load_model, weights_available
from prunegrad_lite.models.registry import MODELS, ModelInfo, Preprocessing, model_info

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
