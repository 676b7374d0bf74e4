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

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from prunegrad_lite.benchmarks.attribution_maps import (
    MethodLike,
    MethodOptions,
    benchmark_inputs,
    maps_for_images,
    on_device,
    options_for,
    predict,
)
from prunegrad_lite.benchmarks.cache import (
    cache_key,
    load_tensor_cell,
    locked_elsewhere,
    read_tensor,
    setup_hash,
    store_tensor_cell,
)
from prunegrad_lite.benchmarks.executor import (
    Cell,
    Executor,
    LocalExecutor,
    executor_for,
    for_cells,
    run_cells,
)
from prunegrad_lite.benchmarks.pixel_results import (
    add_method,
    pixel_settings,
    variant_name,
    variant_suffix,
)
from prunegrad_lite.benchmarks.removal import (
    ORDERS,
    MASK_DEPENDENT,
    REPLACEMENTS,
    check_fractions,
    mean_abs_change,
    rank_pixels,
    removal_masks,
    replace_pixels,
    replacement_images,
)
from prunegrad_lite.benchmarks.results import BenchmarkResult
from prunegrad_lite.runtime import model_device, resolve_device

__all__ = [
    "DEFAULT_FRACTIONS",
    "PixelPerturbationConfig",
    "PixelCell",
    "perturbation_curves",
    "pixel_cell",
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
    cache_dir: str | os.PathLike | None = None,
    executor: str | Executor | None = None,
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
    cache_dir : folder where each method's curves are stored when done
        (``cache_dir/pixel/<setup>/<method>.pt``), so that a rerun reuses them; None: nothing.
    executor : where the methods run (:mod:`.executor`), one cell each (maps and curves of
        one method depend only on the seed, not on the other methods): "local" (default, here)
        or "ray", or an :class:`~.executor.Executor` (left open). The same result either way.

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
    base = setup_hash(model, images)  # weights and images, hashed once for every method
    with executor_for(executor, device=resolve_device(device)) as runner:
        local = isinstance(runner, LocalExecutor)
        sent = for_cells(runner, model)
        cells = []
        for name in names:
            given = None if maps is None else maps.get(name)  # precomputed, else computed
            options = options_for(method_options, name)
            cls = classes[name]
            extra = {
                "method": name,
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "seed": seed,
                "options": options,
                "config": asdict(config),
                "mean": mean,
                "std": std,
                "maps": None if given is None else setup_hash(nn.Module(), given),
            }
            key = cache_key(base, extra)  # the method's cell: everything its curves depend on
            path = None if cache_dir is None else Path(cache_dir) / "pixel" / key / f"{name}.pt"
            where = None if path is None else str(path)
            spec = PixelCell(
                name, cls, options, config, seed, mean, std, device, progress and local, where
            )
            cells.append(
                Cell(
                    key=str(path or name),
                    fn=pixel_cell,
                    args=(spec,),
                    shared=(sent, images, target, fills, given),
                    label=f"pixel perturbation {name}",
                    busy=None if path is None else partial(locked_elsewhere, path),
                    locks=(PIXEL_KIND,),
                )
            )
        # a method that failed raises, with its error, once the others are done and cached
        done = run_cells(runner, cells, "pixel perturbation", progress)
    result = BenchmarkResult("pixel", model_name, names, [], [])
    shape = (len(reps), 2, len(config.orders), len(config.fractions), len(images))
    for name, cell in zip(names, cells):
        path = cell.args[0].path
        table = None if path is None else read_tensor(path, shape=shape)  # the cache first
        table = done[cell.key] if table is None else table
        for r, rep in enumerate(reps):
            change, delta = table[r, 0].float(), table[r, 1]  # float32 and float64, as computed
            add_method(result, name, config, variant_suffix(rep, r == 0), change, delta)
    result.settings = pixel_settings(config, len(images), seed, method_options)
    return result


PIXEL_KIND = "pixel-cell"  # the kind of a method cell's cache lock


@dataclass(frozen=True)
class PixelCell:
    """One method's part of a pixel perturbation run (:func:`pixel_cell`)."""

    name: str
    method: MethodLike
    options: dict[str, Any]
    config: PixelPerturbationConfig
    seed: int
    mean: Sequence[float] | None
    std: Sequence[float] | None
    device: str | torch.device | None
    progress: bool
    path: str | None  # the cache file (None: no cache)


def pixel_cell(
    model: nn.Module,
    images: Tensor,
    target: Tensor,
    fills: Mapping[str | float, Tensor | None],
    maps: Tensor | None,
    spec: PixelCell,
) -> Tensor:
    """One method's curves under every replacement, (R, 2, O, F, N) float64 (index 0: the
    probability change, 1: ``|x' - x|``), read from the cache or computed and stored there.
    The method's maps and its ranks' tie-breaking depend only on ``spec.seed``, so a method
    gives the same curves whichever process computes it and in whichever order."""
    config = spec.config
    reps = config.replacements
    shape = (len(reps), 2, len(config.orders), len(config.fractions), len(images))
    path = None if spec.path is None else Path(spec.path)
    cached = None if path is None else load_tensor_cell(path, shape=shape, kind=PIXEL_KIND)
    if cached is not None:
        return cached
    model = on_device(model, spec.device)  # a CPU copy sent to a GPU worker: moved there
    if maps is None:
        maps = maps_for_images(model, images, spec.method, options=spec.options, target=target,
                               batch_size=config.batch_size, seed=spec.seed,
                               progress=spec.progress)  # fmt: skip
    tables = []
    for rep in reps:
        change, delta = perturbation_curves(
            model,
            images,
            maps,
            target,
            config,
            replacement=fills[rep],
            how=rep,
            mean=spec.mean,
            std=spec.std,
            generator=torch.Generator().manual_seed(spec.seed),  # same ranks for every replacement
            progress=spec.progress,
            with_delta=True,
        )  # (O, F, N) each
        tables.append(torch.stack([change.double(), delta]))
    table = torch.stack(tables)  # (R, 2, O, F, N)
    if path is not None:
        store_tensor_cell(path, table, kind=PIXEL_KIND)  # checksummed, atomic; releases the lock
    return table
