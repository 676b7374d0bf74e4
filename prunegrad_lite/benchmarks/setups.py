"""The models and images a ``reproduce`` run benchmarks, and PruneGrad's sparsity on them.

:func:`load_setup` loads one model of :data:`~.presets.REPRODUCE_MODELS` with its benchmark
data (all offline except the user's CIFAR-10 and ImageNet folders);
:func:`prunegrad_sparsity` is the model's calibrated default, or calibrated here by the rule
of ``docs/method.md`` section 1 (pruning changes the target probability by 15% on average).

Example
-------
>>> setup = load_setup("fashion_mnist", PRESETS["quick"], torch.device("cpu"), "default", 0)
>>> setup.images.shape
torch.Size([200, 1, 28, 28])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.calibration import calibrate_sparsity
from prunegrad_lite.benchmarks.cache import cache_key
from prunegrad_lite.benchmarks.presets import Preset
from prunegrad_lite.data import PHOTOS, load_dataset, load_image_folder, load_photos
from prunegrad_lite.io import load_checkpoint, save_checkpoint
from prunegrad_lite.models import FashionResNet, load_model, model_info
from prunegrad_lite.training import TrainConfig, train_model

__all__ = ["Setup", "imagenet_images", "load_setup", "prunegrad_sparsity"]


@dataclass
class Setup:
    """One model with its benchmark data."""

    name: str
    model: nn.Module
    images: Tensor  # (N, C, H, W) for pixel perturbation
    sanity_images: Tensor
    display: tuple[Sequence[float], Sequence[float]]
    train: Any = None  # ROAR data (Fashion-MNIST only)
    test: Any = None


def load_setup(
    name: str,
    preset: Preset,
    device: torch.device,
    weights: Any,
    seed: int,
    imagenet_folder: Any = None,
    imagenet_images: int = 1000,
    cache: Path | None = None,
) -> Setup:
    """The model ``name`` with its benchmark images (and, for ROAR, its training and test sets),
    sized by ``preset`` and drawn with ``seed``; ``imagenet_folder`` replaces the photographs of
    the ImageNet models, ``cache`` keeps the explained CIFAR-10 ResNet-8 once it is trained."""
    if name == "fashion_mnist":
        model = load_model(name, device=device, weights=weights)
        test = load_dataset("fashion_mnist", "test")
        train = load_dataset("fashion_mnist", "train")
        roar_train = train if preset.roar_train is None else train.subset(preset.roar_train, seed)
        roar_test = test if preset.roar_test is None else test.subset(preset.roar_test, seed)
        return Setup(
            name,
            model,
            test.subset(preset.pixel_images, seed).images,
            test.subset(preset.sanity_images, seed + 1).images,
            (test.mean, test.std),
            roar_train,
            roar_test,
        )
    if name == "cifar10_resnet8":
        return _load_cifar10_resnet8(preset, device, seed, cache)
    model = load_model(name, device=device)  # torchvision models: cached weights or an error
    images = _imagenet_images(name, preset, imagenet_folder, imagenet_images, seed)
    pre = model_info(name).preprocessing
    return Setup(name, model, images, images, (pre.mean, pre.std))


def _load_cifar10_resnet8(
    preset: Preset, device: torch.device, seed: int, cache: Path | None
) -> Setup:
    """The user's CIFAR-10 (``load_dataset("cifar10")``: an error saying where to put it when
    absent) and a ResNet-8 (FashionResNet(3, 10, 16)) trained on it with the package's recipe
    for ``preset.explained_epochs`` epochs (crop padding 4 and flips, best checkpoint on 10% of
    the training images held out), trained once and cached in ``cache/models``."""
    train = load_dataset("cifar10", "train")
    test = load_dataset("cifar10", "test")
    roar_train = train if preset.roar_train is None else train.subset(preset.roar_train, seed)
    roar_test = test if preset.roar_test is None else test.subset(preset.roar_test, seed)
    recipe = TrainConfig(epochs=preset.explained_epochs, crop_padding=4, width=16, seed=seed)
    key = cache_key("cifar10_resnet8", dataclasses.asdict(recipe), len(train), len(test))
    path = None if cache is None else cache / "models" / f"cifar10_resnet8_{key}.pt"
    model = FashionResNet(3, 10, 16)
    if path is not None and path.is_file():
        model.load_state_dict(load_checkpoint(path).state_dict, strict=True)
    else:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        held = max(2, len(train) // 10)
        fit, val = order[held:], order[:held]
        result = train_model(
            (train.images[fit], train.labels[fit]),
            test,
            recipe,
            device=device,
            model_fn=lambda: FashionResNet(3, 10, 16),
            validation=(train.images[val], train.labels[val]),
        )
        model = result.model.cpu()
        if path is not None:
            save_checkpoint(model, path, {"test_accuracy": result.test_accuracy} | result.as_dict())
    model = model.to(device).eval()
    return Setup(
        "cifar10_resnet8",
        model,
        test.subset(min(preset.pixel_images, len(test)), seed).images,
        test.subset(min(preset.sanity_images, len(test)), seed + 1).images,
        (test.mean, test.std),
        roar_train,
        roar_test,
    )


def imagenet_images(name: str, preset: Preset, folder: Any, count: int, seed: int) -> Tensor:
    """The photographs (offline), or ``count`` images drawn (seeded) from an ImageNet folder."""
    style = model_info(name).preprocessing.style
    if folder is None:
        names = list(PHOTOS)[: preset.photos] if preset.photos is not None else None
        return load_photos(names, preprocess=style)[0]
    dataset = load_image_folder(folder, preprocess=style)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    picked = order[: min(count, len(dataset))].sort().values.tolist()
    return torch.stack([dataset[i][0] for i in picked])  # decoding files: one at a time


def prunegrad_sparsity(setup: Setup, preset: Preset) -> tuple[float, str]:
    fixed = None if setup.name == "cifar10_resnet8" else model_info(setup.name).default_sparsity
    if fixed is not None:
        return float(fixed), "the model's calibrated default"
    x = setup.images[: preset.calibration_images].to(next(setup.model.parameters()).device)
    cal = calibrate_sparsity(setup.model, x)
    sparsity, change, extra = cal.sparsity, cal.change, ""
    if sparsity == 0.0:  # no pruning is not PruneGrad: take the smallest sparsity reaching 15%
        reaching = [(s, c) for s, c in cal.evaluated if s > 0 and c >= cal.target_change]
        if reaching:
            sparsity, change = min(reaching)
            extra = (
                "; the change jumps past the target at the smallest sparsity tried (ties at "
                "score 0 are pruned together), so the smallest sparsity reaching it is used "
                "instead of 0, which would be the plain gradient"
            )
    return sparsity, (
        f"calibrated here on {len(x)} images: pruning changes the target probability by "
        f"{change:.3f} on average (target {cal.target_change}){extra}"
    )


_imagenet_images = imagenet_images  # load_setup's argument of the same name shadows it
