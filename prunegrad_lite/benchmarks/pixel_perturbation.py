"""Pixel perturbation: remove the least (LeRF) or most (MoRF) important pixels, watch the output.

Protocol (spec section 3, fixed before looking at results):

* maps are computed with the unchanged model for the class it predicts on the clean image;
* pixels are ranked by ``max_c |A_c|`` (ties broken at random, seeded), and for each fraction
  k of the pixels, all channels of the k least (LeRF) or most (MoRF) important pixels are
  replaced (default: 0 in normalised space, the dataset mean colour; black, blur or a number
  as options);
* the metric is the absolute fractional change of the predicted class's softmax probability,
  ``|p_c(x) - p_c(x')| / p_c(x)``, per image, averaged over images, with its spread;
* the area under each curve is taken over [0, max fraction] with the known point (0, 0)
  prepended and divided by the range: the mean change (:func:`~.results.area_under_curve`).

LeRF: lower is better (the pixels a method calls unimportant should not matter). MoRF: higher
is better. Every fraction and both orders of a batch of images go through the model as one
tensor, in chunks of ``forward_batch`` images, never one image at a time.

Example
-------
>>> test = load_dataset("fashion_mnist", "test")
>>> result = pixel_perturbation(model, test.images[:500], ["gradient", "prunegrad"])
>>> result.score("prunegrad", "lerf@1%").mean
>>> result.save("runs/pixel")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from prunegrad_lite.benchmarks.attribution_maps import (
    MethodLike,
    MethodOptions,
    check_methods,
    check_options,
    compute_maps,
    describe_options,
    on_device,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.removal import (
    ORDERS,
    REPLACEMENTS,
    check_fractions,
    fraction_label,
    rank_pixels,
    removal_masks,
    remove_pixels,
    replacement_images,
)
from prunegrad_lite.benchmarks.results import (
    BenchmarkResult,
    CurvePoint,
    Score,
    area_under_curve,
    mean_std,
)
from prunegrad_lite.device import model_device

__all__ = [
    "DEFAULT_FRACTIONS",
    "PixelPerturbationConfig",
    "perturbation_curves",
    "pixel_perturbation",
    "probability_change",
]

#: 1%, 2%, ..., 10% of the pixels: the authors' LeRF fractions
DEFAULT_FRACTIONS = tuple(round(0.01 * k, 2) for k in range(1, 11))


@dataclass(frozen=True)
class PixelPerturbationConfig:
    """The pixel perturbation protocol; the defaults are the authors' (spec section 3)."""

    fractions: tuple[float, ...] = DEFAULT_FRACTIONS  # fractions of pixels removed, in (0, 1)
    orders: tuple[str, ...] = ORDERS  # "lerf" (least relevant first), "morf" (most relevant first)
    replacement: str | float = "mean"  # "mean" (0 normalised), "black", "blur" or a number
    blur_sigma: float = 3.0  # Gaussian std in pixels, for replacement="blur"
    batch_size: int = 64  # images per attribution call
    forward_batch: int = 512  # perturbed images per forward pass

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", check_fractions(self.fractions))
        orders = tuple(self.orders)
        if not orders or any(o not in ORDERS for o in orders):
            raise ValueError(f"orders must be a non-empty subset of {ORDERS}, got {orders}")
        object.__setattr__(self, "orders", tuple(dict.fromkeys(orders)))
        if isinstance(self.replacement, str) and self.replacement not in REPLACEMENTS:
            raise ValueError(
                f"replacement must be one of {REPLACEMENTS} or a number, got {self.replacement!r}"
            )
        if self.batch_size < 1 or self.forward_batch < 1:
            raise ValueError("batch_size and forward_batch must be positive")


def probability_change(p_clean: Tensor, p_perturbed: Tensor) -> Tensor:
    """``|p - p'| / p`` elementwise: the absolute fractional change of a probability.

    Example
    -------
    >>> probability_change(torch.tensor([0.8]), torch.tensor([0.6]))
    tensor([0.2500])
    """
    return (p_clean - p_perturbed).abs() / p_clean.clamp_min(1e-12)


@torch.no_grad()
def perturbation_curves(
    model: nn.Module,
    images: Tensor,
    maps: Tensor,
    target: Tensor,
    config: PixelPerturbationConfig,
    *,
    replacement: Tensor | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Fractional probability change per order, fraction and image: (O, F, N).

    ``images`` (N, C, H, W), ``maps`` (N, C, H, W) or (N, H, W), ``target`` (N,) the classes
    whose probability is watched. This is the benchmark's core for one method; the model sees
    all O * F perturbed copies of a chunk of images together.
    """
    n, _, h, w = images.shape
    dev = model_device(model)
    if replacement is None:
        replacement = replacement_images(images, config.replacement, mean, std, config.blur_sigma)
    rank = rank_pixels(maps, generator)  # (N, P)
    p_clean = predict(model, images, config.forward_batch).gather(1, target.view(-1, 1))[:, 0]
    n_orders, n_fracs = len(config.orders), len(config.fractions)
    per_chunk = max(1, config.forward_batch // (n_orders * n_fracs))  # images per chunk
    change = torch.empty(n_orders, n_fracs, n)  # (O, F, N)
    starts = range(0, n, per_chunk)
    for start in tqdm(starts, desc="perturb", disable=not progress, leave=False):
        sl = slice(start, start + per_chunk)
        masks = torch.stack(
            [removal_masks(rank[sl], config.fractions, o, (h, w)) for o in config.orders]
        )  # (O, F, b, H, W): O is at most 2, the loop builds two tensors
        copies = remove_pixels(
            images[sl], masks.flatten(0, 1), replacement[sl]
        )  # (O*F, b, C, H, W)
        b = copies.shape[1]
        logits = torch.cat(
            [
                model(chunk.to(dev)).float().cpu()
                for chunk in copies.flatten(0, 1).split(config.forward_batch)
            ]
        )  # (O*F*b, K), index = (order * F + fraction) * b + image
        probs = logits.softmax(-1).view(n_orders, n_fracs, b, -1)
        p_pert = probs.gather(-1, target[sl].view(1, 1, b, 1).expand(n_orders, n_fracs, b, 1))
        change[:, :, sl] = probability_change(p_clean[sl], p_pert[..., 0])
    return change


def pixel_perturbation(
    model: nn.Module,
    images: Tensor,
    methods: MethodLike | Sequence[MethodLike],
    config: PixelPerturbationConfig | None = None,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
    method_options: MethodOptions | None = None,
    maps: Mapping[str, Tensor] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    model_name: str = "model",
) -> BenchmarkResult:
    """Run the pixel perturbation benchmark (LeRF and MoRF) for every method.

    Parameters
    ----------
    model : a classifier in eval mode; never modified (copied when it must change device).
    images : (N, C, H, W) normalised inputs.
    methods : names of :data:`~prunegrad_lite.METHODS` or ``Attribution`` subclasses.
    config : the protocol (default :class:`PixelPerturbationConfig`: 1%..10% in 1% steps,
        LeRF and MoRF, replacement 0 in normalised space).
    device : where to run (None: CUDA when available, else CPU).
    seed : seeds the tie-breaking of pixel ranks and the random control; default 0.
    progress : tqdm progress bars.
    method_options : ``{method: {option: value}}`` for the methods' constructors.
    maps : precomputed maps ``{method: (N, C, H, W)}`` to reuse (others are computed).
    mean, std : the normalisation, in [0, 1] pixel units (only for replacement "black").
    model_name : the name written into the results.

    Scores per method: ``{order}_auc`` (mean change over [0, max fraction]) and the change at
    the smallest and largest fraction, e.g. ``lerf@1%`` and ``lerf@10%``.
    """
    config = config or PixelPerturbationConfig()
    classes = check_methods(methods)
    names = list(classes)
    check_options(method_options, names)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty (N, C, H, W) batch, got {tuple(images.shape)}"
        )
    model = on_device(model, device)
    images = images.detach().float().cpu()
    target = predict(model, images, config.forward_batch).argmax(1)  # (N,) predicted classes
    replacement = replacement_images(images, config.replacement, mean, std, config.blur_sigma)
    xs = [0.0, *config.fractions]
    curves: list[CurvePoint] = []
    scores: list[Score] = []
    for name in tqdm(names, desc="pixel perturbation", disable=not progress):
        given = None if maps is None else maps.get(name)
        method_maps = (
            given
            if given is not None
            else compute_maps(
                model,
                images,
                classes[name],
                options=options_for(method_options, name),
                target=target,
                batch_size=config.batch_size,
                seed=seed,
                progress=progress,
            )
        )
        change = perturbation_curves(
            model,
            images,
            method_maps,
            target,
            config,
            replacement=replacement,
            generator=torch.Generator().manual_seed(seed),
            progress=progress,
        )  # (O, F, N)
        m, s, k = mean_std(change, dim=2)  # (O, F)
        with_origin = torch.cat([change.new_zeros(change.shape[0], 1, change.shape[2]), change], 1)
        auc = area_under_curve(xs, with_origin, dim=1)  # (O, N)
        better = {"lerf": "lower", "morf": "higher"}
        for i, order in enumerate(config.orders):
            for j, f in enumerate(config.fractions):
                curves.append(
                    CurvePoint(
                        name,
                        "prob_change",
                        order,
                        j,
                        f,
                        fraction_label(f),
                        float(m[i, j]),
                        float(s[i, j]),
                        int(k[i, j]),
                    )
                )
            am, asd, an = mean_std(auc[i])
            scores.append(
                Score(name, f"{order}_auc", float(am), float(asd), int(an), better[order])
            )
            for j in sorted({0, len(config.fractions) - 1}):
                label = f"{order}@{fraction_label(config.fractions[j])}"
                scores.append(
                    Score(name, label, float(m[i, j]), float(s[i, j]), int(k[i, j]), better[order])
                )
    settings: dict[str, Any] = {
        **asdict(config),
        "num_images": len(images),
        "seed": seed,
        "metric": "|p_c(x) - p_c(x')| / p_c(x), c the class predicted on the clean image",
        "ranking": "max over channels of |attribution|, ties broken at random (seeded)",
        "auc": "trapezoid over [0, max fraction] with (0, 0) prepended, divided by the range",
        "method_options": describe_options(method_options),
    }
    return BenchmarkResult("pixel", model_name, names, curves, scores, settings)
