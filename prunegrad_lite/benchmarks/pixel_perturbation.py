"""Pixel perturbation: remove the least (LeRF) or most (MoRF) important pixels, watch the output.

Protocol (spec section 3, fixed before looking at results):

* maps are computed with the unchanged model for the class it predicts on the clean image;
* pixels are ranked by ``max_c |A_c|`` (ties broken at random, seeded), and for each fraction
  k of the pixels, all channels of the k least (LeRF) or most (MoRF) important pixels are
  replaced (default: 0 in normalised space, the dataset mean colour; black, blur, the noisy
  linear imputation of Rong et al. 2022 or a number as options). Several replacements can run
  in one call (``replacement=("mean", "blur", "noisy_linear")``): the first one's curves have
  the variants ``"lerf"``/``"morf"`` and scores ``lerf@1%`` ..., every other one's the suffix
  ``_{replacement}`` (``"lerf_blur"``, ``lerf_blur@1%``);
* the metric is the absolute fractional change of the predicted class's softmax probability,
  ``|p_c(x) - p_c(x')| / p_c(x)``, per image, averaged over images, with its spread;
* beside it, metric ``"abs_delta_x"``: the mean ``|x' - x|`` over the removed pixels (all
  channels, normalised space) per image: how much the removal changed the input. With the
  ``"mean"`` replacement, methods that multiply by the input (Gradient x Input, IG with a zero
  baseline) tend to remove pixels that are already near 0, i.e. change the input less;
* every per-image value is stored in the result's ``units`` (one row: the images), so paired
  comparisons between methods can be recomputed from the saved files;
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
    benchmark_inputs,
    describe_options,
    maps_for_images,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.removal import (
    ORDERS,
    MASK_DEPENDENT,
    REPLACEMENTS,
    check_fractions,
    fraction_label,
    mean_abs_change,
    rank_pixels,
    removal_masks,
    replace_pixels,
    replacement_images,
)
from prunegrad_lite.benchmarks.results import (
    BenchmarkResult,
    CurvePoint,
    Score,
    area_under_curve,
    mean_std,
)
from prunegrad_lite.runtime import model_device

__all__ = [
    "DEFAULT_FRACTIONS",
    "PixelPerturbationConfig",
    "perturbation_curves",
    "pixel_perturbation",
    "probability_change",
    "variant_name",
]

#: 1%, 2%, ..., 10% of the pixels: the authors' LeRF fractions
DEFAULT_FRACTIONS = tuple(round(0.01 * k, 2) for k in range(1, 11))


@dataclass(frozen=True)
class PixelPerturbationConfig:
    """The pixel perturbation protocol; the defaults are the authors' (spec section 3)."""

    fractions: tuple[float, ...] = DEFAULT_FRACTIONS  # fractions of pixels removed, in (0, 1)
    orders: tuple[str, ...] = ORDERS  # "lerf" (least relevant first), "morf" (most relevant first)
    # "mean" (0 normalised), "black", "blur", "noisy_linear", a number, or a tuple of them (the
    # first is the main one: variants "lerf"/"morf"; the others add "_{replacement}")
    replacement: str | float | tuple[str | float, ...] = "mean"
    blur_sigma: float = 3.0  # Gaussian std in pixels, for replacement="blur"
    noise_std: float = 0.01  # noise of the "noisy_linear" imputation (Rong et al.'s default)
    batch_size: int = 64  # images per attribution call
    forward_batch: int = 512  # perturbed images per forward pass

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", check_fractions(self.fractions))
        orders = tuple(self.orders)
        if not orders or any(o not in ORDERS for o in orders):
            raise ValueError(f"orders must be a non-empty subset of {ORDERS}, got {orders}")
        object.__setattr__(self, "orders", tuple(dict.fromkeys(orders)))
        reps = (
            self.replacement if isinstance(self.replacement, (tuple, list)) else (self.replacement,)
        )
        reps = tuple(dict.fromkeys(reps))
        for rep in reps:
            number = isinstance(rep, (int, float)) and not isinstance(rep, bool)
            if not number and rep not in REPLACEMENTS:
                raise ValueError(
                    f"replacement must be one of {REPLACEMENTS} or a number (or a tuple of "
                    f"them), got {rep!r}"
                )
        if not reps:
            raise ValueError(f"give at least one replacement, one of {REPLACEMENTS}")
        object.__setattr__(self, "replacement", reps[0] if len(reps) == 1 else reps)
        if not self.noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if self.batch_size < 1 or self.forward_batch < 1:
            raise ValueError("batch_size and forward_batch must be positive")

    @property
    def replacements(self) -> tuple[str | float, ...]:
        """The replacements as a tuple, the main one first."""
        r = self.replacement
        return tuple(r) if isinstance(r, (tuple, list)) else (r,)


def variant_name(order: str, replacement: str | float, main: bool) -> str:
    """The curve variant of one order and replacement: ``"lerf"`` for the main replacement,
    ``"lerf_blur"`` (``"lerf_0.5"`` for a number) for the others."""
    return order + variant_suffix(replacement, main)


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
    how: str | float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    with_delta: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Fractional probability change per order, fraction and image: (O, F, N).

    ``images`` (N, C, H, W), ``maps`` (N, C, H, W) or (N, H, W), ``target`` (N,) the classes
    whose probability is watched. This is the benchmark's core for one method and one
    replacement (``how``, default the config's main one; ``replacement`` a precomputed
    :func:`~.removal.replacement_images` to reuse); the model sees all O * F perturbed copies
    of a chunk of images together. ``generator`` breaks rank ties, then draws the imputation
    noise. ``with_delta=True`` also returns the mean ``|x' - x|`` over the removed pixels,
    (O, F, N) float64.
    """
    n, _, h, w = images.shape
    dev = model_device(model)
    how = config.replacements[0] if how is None else how
    if replacement is None and how not in MASK_DEPENDENT:
        replacement = replacement_images(images, how, mean, std, config.blur_sigma)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    rank = rank_pixels(maps, gen)  # (N, P)
    p_clean = predict(model, images, config.forward_batch).gather(1, target.view(-1, 1))[:, 0]
    n_orders, n_fracs = len(config.orders), len(config.fractions)
    per_chunk = max(1, config.forward_batch // (n_orders * n_fracs))  # images per chunk
    change = torch.empty(n_orders, n_fracs, n)  # (O, F, N)
    delta = torch.empty(n_orders, n_fracs, n, dtype=torch.float64)
    starts = range(0, n, per_chunk)
    for start in tqdm(starts, desc="perturb", disable=not progress, leave=False):
        sl = slice(start, start + per_chunk)
        masks = torch.stack(
            [removal_masks(rank[sl], config.fractions, o, (h, w)) for o in config.orders]
        ).flatten(0, 1)  # (O*F, b, H, W): O is at most 2, the loop builds two tensors
        copies = replace_pixels(
            images[sl],
            masks,
            how,
            replacement=None if replacement is None else replacement[sl],
            noise_std=config.noise_std,
            generator=gen,
        )  # (O*F, b, C, H, W)
        b = copies.shape[1]
        delta[:, :, sl] = mean_abs_change(images[sl], copies, masks).view(n_orders, n_fracs, b)
        logits = torch.cat(
            [
                model(chunk.to(dev)).float().cpu()
                for chunk in copies.flatten(0, 1).split(config.forward_batch)
            ]
        )  # (O*F*b, K), index = (order * F + fraction) * b + image
        probs = logits.softmax(-1).view(n_orders, n_fracs, b, -1)
        p_pert = probs.gather(-1, target[sl].view(1, 1, b, 1).expand(n_orders, n_fracs, b, 1))
        change[:, :, sl] = probability_change(p_clean[sl], p_pert[..., 0])
    return (change, delta) if with_delta else change


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
    model, images, classes = benchmark_inputs(model, images, methods, method_options, device)
    target = predict(model, images, config.forward_batch).argmax(1)  # (N,) predicted classes
    reps = config.replacements  # the main one first
    fills = {  # replacement values that do not depend on the mask, computed once
        rep: None
        if rep in MASK_DEPENDENT
        else replacement_images(images, rep, mean, std, config.blur_sigma)
        for rep in reps
    }
    names = list(classes)
    result = BenchmarkResult("pixel", model_name, names, [], [])
    for name in tqdm(names, desc="pixel perturbation", disable=not progress):
        method_maps = None if maps is None else maps.get(name)  # precomputed, else computed
        if method_maps is None:
            method_maps = maps_for_images(
                model,
                images,
                classes[name],
                options=options_for(method_options, name),
                target=target,
                batch_size=config.batch_size,
                seed=seed,
                progress=progress,
            )
        for r, rep in enumerate(reps):
            change, delta = perturbation_curves(
                model,
                images,
                method_maps,
                target,
                config,
                replacement=fills[rep],
                how=rep,
                mean=mean,
                std=std,
                generator=torch.Generator().manual_seed(seed),  # same ranks for every replacement
                progress=progress,
                with_delta=True,
            )  # (O, F, N) each
            _add_method(result, name, config, variant_suffix(rep, r == 0), change, delta)
    result.settings = _settings(config, len(images), seed, method_options)
    return result


# --------------------------------------------------------------------------------------------------
# Result assembly
# --------------------------------------------------------------------------------------------------

_BETTER = {"lerf": "lower", "morf": "higher"}


def variant_suffix(replacement: str | float, main: bool) -> str:
    """``""`` for the main replacement, ``"_blur"`` (``"_0.5"`` for a number) for the others."""
    if main:
        return ""
    return f"_{replacement:g}" if isinstance(replacement, (int, float)) else f"_{replacement}"


def _add_method(
    result: BenchmarkResult,
    name: str,
    config: PixelPerturbationConfig,
    suffix: str,
    change: Tensor,
    delta: Tensor,
) -> None:
    """One method's curves under one replacement (``prob_change`` and ``abs_delta_x``, (O, F, N)
    each), their per-image units, and its scores: the area under each curve and the change at
    the smallest and largest fraction."""
    for metric, values in (("prob_change", change), ("abs_delta_x", delta)):
        m, s, k = mean_std(values, dim=2)  # (O, F)
        for i, order in enumerate(config.orders):
            variant = order + suffix
            for j, f in enumerate(config.fractions):
                point = (float(m[i, j]), float(s[i, j]), int(k[i, j]))
                result.curves.append(
                    CurvePoint(name, metric, variant, j, f, fraction_label(f), *point)
                )
                result.set_units(name, metric, variant, j, values[i, j])
    with_origin = torch.cat([change.new_zeros(change.shape[0], 1, change.shape[2]), change], 1)
    auc = area_under_curve([0.0, *config.fractions], with_origin, dim=1)  # (O, N)
    m, s, k = mean_std(change, dim=2)
    for i, order in enumerate(config.orders):
        variant, better = order + suffix, _BETTER[order]
        am, asd, an = mean_std(auc[i])
        result.scores.append(Score(name, f"{variant}_auc", float(am), float(asd), int(an), better))
        result.set_units(name, "prob_change_auc", variant, 0, auc[i])
        for j in sorted({0, len(config.fractions) - 1}):
            label = f"{variant}@{fraction_label(config.fractions[j])}"
            point = (float(m[i, j]), float(s[i, j]), int(k[i, j]))
            result.scores.append(Score(name, label, *point, better))


def _settings(
    config: PixelPerturbationConfig,
    num_images: int,
    seed: int,
    method_options: MethodOptions | None,
) -> dict[str, Any]:
    """The protocol as run, for the result's ``settings``."""
    reps = config.replacements
    return {
        **asdict(config),
        "num_images": num_images,
        "seed": seed,
        "metric": "|p_c(x) - p_c(x')| / p_c(x), c the class predicted on the clean image",
        "ranking": "max over channels of |attribution|, ties broken at random (seeded)",
        "auc": "trapezoid over [0, max fraction] with (0, 0) prepended, divided by the range",
        "method_options": describe_options(method_options),
        "replacements": [
            {"replacement": rep, "variants": [variant_name(o, rep, r == 0) for o in config.orders]}
            for r, rep in enumerate(reps)
        ],
        "abs_delta_x": "mean |x' - x| over the removed pixels (all channels, normalised space)",
        "figure_panels": [
            ["prob_change", variant_name(o, rep, r == 0)]
            for r, rep in enumerate(reps)
            for o in config.orders
        ]
        + [
            ["abs_delta_x", variant_name(config.orders[0], rep, r == 0)]
            for r, rep in enumerate(reps)
        ],
        "units": "per image: units[method/metric/variant/step] is a (1, N) table over the images; "
        "metric prob_change_auc (step 0) holds each image's area under the curve",
    }
