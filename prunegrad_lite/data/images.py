"""ImageNet-style inputs: preprocessing, the offline photographs, image folders, class names.

* :func:`preprocess_imagenet` / :func:`denormalize_imagenet`: resize, crop and normalise a photo
  for an ImageNet model (two normalisation styles), and undo it for display;
* :data:`PHOTOS`: real photographs that ship inside scikit-image, scikit-learn and matplotlib,
  with their licences (:func:`load_photo`, :func:`load_photos`);
* :func:`load_image_folder`: an ImageNet-style ``<class>/<image>`` folder, read lazily;
* :func:`imagenet_classes`: the 1000 ImageNet class names, shipped in ``prunegrad_lite/resources``.

Example
-------
>>> x, names = load_photos(["coffee"])
>>> tuple(x.shape), names
((1, 3, 224, 224), ['coffee'])
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from prunegrad_lite.data.labeled import denormalize
from prunegrad_lite.data.registry import DataError

__all__ = [
    "IMAGENET_NORMALIZATION",
    "OBJECT_PHOTOS",
    "PHOTOS",
    "Photo",
    "denormalize_imagenet",
    "imagenet_classes",
    "load_image_folder",
    "load_photo",
    "load_photos",
    "preprocess_imagenet",
]

# ImageNet normalisations in [0, 1] pixel units. EfficientNet-Lite0 uses (x - 127) / 128 on
# 0..255 pixels, which is mean 127/255 and std 128/255 in these units.
IMAGENET_NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "efficientnet_lite0": ((127 / 255,) * 3, (128 / 255,) * 3),
    "torchvision": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
Style = Literal["efficientnet_lite0", "torchvision"]


def preprocess_imagenet(
    img: np.ndarray, style: Style = "efficientnet_lite0", size: int = 224
) -> torch.Tensor:
    """Resize the shorter side to ``size * 256 / 224``, centre-crop ``size``, normalise.

    ``img`` is uint8, (H, W, 3) or (H, W) (grey is repeated to 3 channels). Resizing is
    bilinear with antialiasing on uint8 (torchvision ``transforms.v2.functional``, like PIL),
    deterministic. ``style="efficientnet_lite0"``: ``(x - 127) / 128`` on 0..255 pixels;
    ``style="torchvision"``: ``(x / 255 - mean) / std`` with the ImageNet
    mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). Returns (3, size, size) float32.

    Example
    -------
    >>> preprocess_imagenet(np.full((300, 400, 3), 127, np.uint8)).abs().max().item()
    0.0
    """
    from torchvision.transforms.v2 import functional as TF

    if style not in IMAGENET_NORMALIZATION:
        raise ValueError(f"style must be one of {list(IMAGENET_NORMALIZATION)}, got {style!r}")
    array = np.asarray(img)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(
            f"expected a uint8 (H, W, 3) or (H, W) image, got {array.dtype} {array.shape}"
        )
    array = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array[..., :3]
    x = torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, H, W) uint8, own copy
    x = TF.resize(x, [round(size * 256 / 224)], antialias=True)  # shorter side
    x = TF.center_crop(x, [size, size]).float()  # (3, size, size), 0..255
    if style == "efficientnet_lite0":
        return (x - 127.0) / 128.0
    mean, std = IMAGENET_NORMALIZATION[style]
    return (x / 255.0 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def denormalize_imagenet(x: torch.Tensor, style: Style = "efficientnet_lite0") -> torch.Tensor:
    """Undo :func:`preprocess_imagenet`'s normalisation: pixels in [0, 1] for display, clamped.

    Example
    -------
    >>> round(denormalize_imagenet(torch.zeros(3, 2, 2))[0, 0, 0].item() * 255, 3)
    127.0
    """
    mean, std = IMAGENET_NORMALIZATION[style]
    return denormalize(x, mean, std)


@dataclass(frozen=True)
class Photo:
    """A real photograph that ships inside an installed package (read offline).

    ``group``: ``"object"`` (colour photograph of an ImageNet-like object), ``"grey object"``
    (grey-level photograph of an object, repeated over the three channels), ``"colour other"``
    (astronomy, medical, microscopy) or ``"texture"`` (grey-level close-ups).
    """

    name: str
    source: str  # the call that loads it
    licence: str  # as the shipping package documents it
    description: str
    group: str = "object"


# Every real photograph that scikit-image 0.26, scikit-learn and matplotlib ship (checked
# 2026-11-30), with the licence their docstrings or READMEs give. Left out: skimage's moon and
# page (no licence stated), cell (a phase image from a hologram, not a photograph), horse and
# logo (drawings), lfw_subset (25x25 crops, no licence), the right view of the motorcycle (the
# same scene as the left one), matplotlib's Minduka present (clip art). 19 photographs: fewer
# than 20, and only 8 of them are colour photographs of ImageNet-like objects.
PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in [
        Photo("chelsea", "skimage.data.chelsea()", "CC0 (Stefan van der Walt)", "Chelsea the cat"),
        Photo("coffee", "skimage.data.coffee()", "CC0 (Rachel Michetti)", "a cup of espresso"),
        Photo("astronaut", "skimage.data.astronaut()", "public domain (NASA)", "Eileen Collins"),
        Photo("rocket", "skimage.data.rocket()", "public domain (SpaceX)", "Falcon 9 launch"),
        Photo(
            "motorcycle",
            "skimage.data.stereo_motorcycle()[0]",
            "Middlebury 2014 stereo data set (Scharstein et al.)",
            "a motorcycle (left view)",
        ),
        Photo(
            "china",
            'sklearn.datasets.load_sample_image("china.jpg")',
            "CC BY 2.0 (danielbuechele on Flickr)",
            "a Chinese temple",
        ),
        Photo(
            "flower",
            'sklearn.datasets.load_sample_image("flower.jpg")',
            "CC BY 2.0 (vultilion on Flickr)",
            "a flower",
        ),
        Photo(
            "grace_hopper",
            'matplotlib.cbook.get_sample_data("grace_hopper.jpg")',
            "public domain (U.S. Navy official photograph)",
            "Grace Hopper in uniform",
        ),
        Photo(
            "camera",
            "skimage.data.camera()",
            "CC0 (Lav Varshney)",
            "a photographer with a camera on a tripod",
            "grey object",
        ),
        Photo(
            "coins",
            "skimage.data.coins()",
            "no known copyright restrictions (Brooklyn Museum)",
            "Greek coins from Pompeii",
            "grey object",
        ),
        Photo(
            "clock",
            "skimage.data.clock()",
            "public domain (Stefan van der Walt)",
            "a wall clock, motion blurred",
            "grey object",
        ),
        Photo(
            "text",
            "skimage.data.text()",
            "public domain (Wikipedia File:Corner.png)",
            "a sign with text",
            "grey object",
        ),
        Photo(
            "hubble_deep_field",
            "skimage.data.hubble_deep_field()",
            "public domain (NASA)",
            "Hubble eXtreme Deep Field",
            "colour other",
        ),
        Photo(
            "retina",
            "skimage.data.retina()",
            "CC0 (Mikael Haggstrom, Wikimedia Commons)",
            "fundus photograph of a retina",
            "colour other",
        ),
        Photo(
            "immunohistochemistry",
            "skimage.data.immunohistochemistry()",
            "no known copyright restrictions (CMMI)",
            "stained colonic glands (microscope)",
            "colour other",
        ),
        Photo(
            "microaneurysms",
            "skimage.data.microaneurysms()",
            "CC0 (Andreas Maier, HRF database)",
            "retina detail with lesions (green channel)",
            "colour other",
        ),
        Photo("brick", "skimage.data.brick()", "CC0 (CC0Textures)", "a brick wall", "texture"),
        Photo(
            "grass", "skimage.data.grass()", "CC0 (linolafett on DeviantArt)", "grass", "texture"
        ),
        Photo("gravel", "skimage.data.gravel()", "CC0 (CC0Textures)", "gravel", "texture"),
    ]
}
#: The colour photographs of ImageNet-like objects (``group == "object"``): the default of
#: ``prunegrad-lite explain`` and of the notebooks' examples.
OBJECT_PHOTOS: tuple[str, ...] = tuple(n for n, p in PHOTOS.items() if p.group == "object")


def load_photo(name: str) -> np.ndarray:
    """The photograph ``name`` of :data:`PHOTOS` as uint8, read offline.

    (H, W, 3) for colour photographs, (H, W) for grey-level ones (:func:`preprocess_imagenet`
    repeats them over the three channels).

    Example
    -------
    >>> load_photo("coffee").shape
    (400, 600, 3)
    """
    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; known photos: {', '.join(PHOTOS)}")
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"))
    if name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as image:
            return np.asarray(image.convert("RGB"))
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return np.asarray(getattr(skimage.data, name)())


def load_photos(
    names: Sequence[str] | None = None, size: int = 224, preprocess: Style = "efficientnet_lite0"
) -> tuple[torch.Tensor, list[str]]:
    """Photographs (default: all of :data:`PHOTOS`) preprocessed for an ImageNet model.

    Returns a (N, 3, size, size) float32 tensor and the names, in order; see
    :func:`preprocess_imagenet` for the two styles and :func:`denormalize_imagenet` to display.

    Example
    -------
    >>> x, names = load_photos(["coffee"])
    >>> tuple(x.shape), names
    ((1, 3, 224, 224), ['coffee'])
    """
    names = list(PHOTOS) if names is None else list(names)
    images = [preprocess_imagenet(load_photo(n), preprocess, size) for n in names]
    return torch.stack(images), names


def _folder_transform(image: Any, style: Style, size: int) -> torch.Tensor:
    return preprocess_imagenet(np.asarray(image.convert("RGB")), style, size)


def load_image_folder(
    path: str | os.PathLike,
    preprocess: Style | Callable[[Any], torch.Tensor] = "torchvision",
    size: int = 224,
) -> torch.utils.data.Dataset:
    """An ImageNet-style folder (``path/<class>/<image>``) as a lazy ``ImageFolder`` dataset.

    Images are read when indexed, so a 50,000-image validation set fits in memory; items are
    ``(image (3, size, size) float32, class index)``. ``preprocess`` is a style of
    :func:`preprocess_imagenet` or any callable on a PIL image. Classes are the sub-folder
    names in sorted order (``dataset.classes``). ImageNet cannot be downloaded for you
    (licence): get it from https://image-net.org.

    Example
    -------
    >>> folder = load_image_folder("~/imagenet/val")  # doctest: +SKIP
    >>> image, label = folder[0]  # doctest: +SKIP
    """
    from torchvision.datasets import ImageFolder

    folder = Path(path).expanduser()
    if not callable(preprocess) and preprocess not in IMAGENET_NORMALIZATION:
        raise ValueError(f"preprocess must be one of {list(IMAGENET_NORMALIZATION)} or a callable")
    transform = (
        preprocess
        if callable(preprocess)
        else functools.partial(_folder_transform, style=preprocess, size=size)
    )
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} does not exist. Arrange images as "
            f"{folder}/<class name>/<image>.JPEG (ImageNet: https://image-net.org)."
        )
    try:
        return ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, OSError) as err:
        raise DataError(
            f"no images in class sub-folders of {folder}: {err}. Arrange images as "
            f"{folder}/<class name>/<image>.JPEG."
        ) from err


@functools.lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    text = resources.files("prunegrad_lite").joinpath("resources/imagenet_classes.txt").read_text()
    names = tuple(text.splitlines())
    if len(names) != 1000:
        raise DataError(
            f"prunegrad_lite/resources/imagenet_classes.txt has {len(names)} lines, "
            "not 1000: reinstall the package"
        )
    return names


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (torchvision's names, shipped).

    Example
    -------
    >>> imagenet_classes()[967]
    'espresso'
    """
    return list(_imagenet_classes())
