"""PruneGrad: the input gradient of the network pruned for this input (spec section 1).

1. score every neuron for the target logit S_c (:func:`~prunegrad_lite.neuron_scores`);
2. prune, per sample, the neurons at or below the ``sparsity`` percentile of the scores
   (:func:`~prunegrad_lite.masks_from_scores`);
3. with the masks fixed, take ``dS_c^pruned / dx`` (:func:`~prunegrad_lite.apply_masks`).

The third step can run another gradient method inside the pruned network (``inner``) and the
first can score neurons differently (``scoring``), which gives the variants the paper and the
notebooks use: the random-pruning control, PruneInt, Integrated Gradients / SmoothGrad /
Gradient x Input in the pruned network, and the iterative perturbation.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import (
    ActivationModifiedError,
    ActivationSite,
    interception_copies,
)
from prunegrad_lite.attribution.base import (
    Attribution,
    TargetLike,
    check_inputs,
    check_model,
    input_gradient,
    preserve_model_state,
)
from prunegrad_lite.attribution.gradients import grad_x_input, integrated_gradients, smoothgrad
from prunegrad_lite.attribution.pruning import (
    SCORINGS,
    THRESHOLDS,
    NeuronScores,
    PruningMasks,
    apply_masks,
    check_sparsity,
    compute_scores,
    masks_from_scores,
)

__all__ = [
    "AUTO_CLIP_TREATMENT",
    "CLIP_TREATMENTS",
    "DEFAULT_SPARSITY",
    "INNER_METHODS",
    "Calibration",
    "PruneGrad",
    "PruneGradExplanation",
    "calibrate_sparsity",
    "check_clip_treatment",
    "clip_treatment_options",
    "pruned_perturbation",
]

#: Used for models that carry no calibrated default (``model.default_sparsity``): the authors'
#: ResNet50 value. Calibrate your own with :func:`calibrate_sparsity`.
DEFAULT_SPARSITY = 0.7

#: What PruneGrad does about clipped activations (ReLU6), for the Taylor scoring: name ->
#: (step 2's rule, straight-through scoring). ``"spec"`` is the method as published; the others
#: are our extension (see :mod:`prunegrad_lite.attribution.relu6`). On networks without a
#: ReLU6 every treatment gives the spec's masks bit for bit.
CLIP_TREATMENTS: dict[str, tuple[str, bool]] = {
    "spec": ("spec", False),
    "keep_active": ("keep_active", False),
    "straight_through": ("spec", True),
    "straight_through+keep_active": ("keep_active", True),
}
#: The treatment ``clip_treatment="auto"`` (the default) uses with the Taylor scoring, chosen from
#: the measurements on EfficientNet-Lite0 in docs/relu6.md (perf/relu6_candidates.py).
AUTO_CLIP_TREATMENT = "keep_active"


def pruned_perturbation(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    steps: int = 10,
    step_size: float | None = None,
) -> Tensor:
    """Iterative perturbation: projected gradient ascent on S_c within an L2 ball around x.

    ``x_{t+1} = proj(x_t + step_size * g_t / ||g_t||)`` with ``g_t = dS_c/dx (x_t)`` and the
    projection onto ``||x' - x||_2 <= epsilon`` (per sample, in normalised input units). Returns
    the perturbation ``x_T - x`` (N, ...). ``step_size`` defaults to ``2.5 * epsilon / steps``.
    With ``steps=1, step_size=epsilon`` it is ``epsilon * PruneGrad / ||PruneGrad||``: PruneGrad
    is its one-step version. Run it inside :func:`apply_masks` to perturb the pruned network.
    """
    if epsilon <= 0 or steps < 1:
        raise ValueError(f"epsilon must be > 0 and steps >= 1, got {epsilon} and {steps}")
    step = 2.5 * epsilon / steps if step_size is None else step_size
    shape = (-1,) + (1,) * (inputs.ndim - 1)
    delta = torch.zeros_like(inputs)
    for _ in range(steps):  # iterations of the ascent; every sample of the batch at once
        g, _ = input_gradient(model, inputs + delta, target)
        g_norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        delta = delta + step * g / g_norm
        d_norm = delta.flatten(1).norm(dim=1).view(shape)
        delta = delta * torch.clamp(epsilon / d_norm.clamp_min(1e-12), max=1.0)
    return delta


def _inner_gradient(model, x, t, **opts):
    return input_gradient(model, x, t)[0]


#: Methods that step 3 can run inside the pruned network: name -> f(model, x, target, **options).
INNER_METHODS: dict[str, Callable[..., Tensor]] = {
    "gradient": _inner_gradient,
    "grad_x_input": grad_x_input,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "perturbation": pruned_perturbation,
}


# models seen to modify an activation's output in place after the call: run with copies
_MODIFYING_MODELS: weakref.WeakSet[nn.Module] = weakref.WeakSet()


@dataclass
class PruneGradExplanation:
    """Everything one PruneGrad call computed, for teaching and inspection.

    Shapes: N samples, K classes, L activation sites.
    """

    attribution: Tensor  # (N, C, H, W) signed map, on the inputs' device
    target: Tensor  # (N,) explained classes
    logits: Tensor  # (N, K) unpruned network
    pruned_logits: Tensor  # (N, K) pruned network (same masks as the attribution)
    sites: list[ActivationSite]  # activation calls in forward order
    kept_per_site: Tensor  # (N, L) fraction of each site's neurons kept
    kept_fraction: Tensor  # (N,) fraction of all neurons kept (effective 1 - sparsity)
    thresholds: Tensor  # (N,) global or (N, L) per-layer score thresholds
    sparsity: float
    scores: list[Tensor] | None = field(default=None, repr=False)  # per site (N, *shape)
    masks: list[Tensor] | None = field(default=None, repr=False)  # per site, bool (N, *shape)

    @property
    def prob(self) -> Tensor:
        """Target softmax probability of the unpruned network (N,)."""
        return self.logits.softmax(-1).gather(1, self.target.view(-1, 1)).squeeze(1)

    @property
    def pruned_prob(self) -> Tensor:
        """Target softmax probability of the pruned network (N,)."""
        return self.pruned_logits.softmax(-1).gather(1, self.target.view(-1, 1)).squeeze(1)

    @property
    def prob_change(self) -> Tensor:
        """Relative change of the target probability caused by pruning, ``|p - p'| / p`` (N,)."""
        return (self.prob - self.pruned_prob).abs() / self.prob.clamp_min(1e-12)

    @property
    def neurons_per_site(self) -> list[int]:
        return [s.numel for s in self.sites]

    def layer_table(self, sample: int = 0) -> str:
        """A plain-text table of neurons and kept fraction per site for one sample."""
        rows = [f"{'#':>3}  {'site':<32} {'kind':<5} {'shape':<16} {'neurons':>9} {'kept':>7}"]
        for site, kept in zip(self.sites, self.kept_per_site[sample].tolist()):
            shape = "x".join(map(str, site.shape))
            rows.append(
                f"{site.index:>3}  {site.name[:32]:<32} {site.kind:<5} {shape:<16} "
                f"{site.numel:>9} {kept:>7.1%}"
            )
        rows.append(
            f"all: {sum(self.neurons_per_site)} neurons, {self.kept_fraction[sample].item():.1%} kept "
            f"at sparsity {self.sparsity}; p(target) {self.prob[sample].item():.3f} -> "
            f"{self.pruned_prob[sample].item():.3f}"
        )
        return "\n".join(rows)


class PruneGrad(Attribution):
    """PruneGrad (Khakzar et al., arXiv 1911.11081): the gradient of the input-specifically pruned net.

    Parameters
    ----------
    model : a ReLU-family network in eval mode (ReLU/ReLU6, module or functional, reused or
        in-place activations and residual additions are all handled).
    sparsity : fraction of all neurons pruned, in [0, 1). ``None``: ``model.default_sparsity``
        when the model carries one (the shipped models do, calibrated to a 15% probability
        change), else :data:`DEFAULT_SPARSITY` = 0.7. 0 keeps every neuron (plain gradient).
    threshold : ``"global"`` (one percentile over all neurons of a sample; the method) or
        ``"layer"`` (the same percentile within each layer; for teaching).
    scoring : ``"taylor"`` (``|a dS/da|``; PruneGrad), ``"integrated_gradients"`` (PruneInt, 11
        alphas) or ``"random"`` (random pruning at the same sparsity: the control).
    inner : method run inside the pruned network: ``"gradient"`` (PruneGrad), ``"grad_x_input"``,
        ``"integrated_gradients"``, ``"smoothgrad"`` or ``"perturbation"`` (iterative, L2 ball).
        Masks are computed once from x and are *not* recomputed along IG's path or per noise.
    inner_options : keyword options of the inner method (e.g. ``{"steps": 50}`` for IG).
    seed : seed or ``torch.Generator`` for the random scoring and SmoothGrad noise; an int
        gives the same maps on every call.
    clip_treatment : what to do about ReLU6's clip (Taylor scoring only): ``"spec"`` (the
        method: prune ``score <= thr``), ``"keep_active"`` (never count an active neuron with
        score 0 at a ReLU6 site as unimportant), ``"straight_through"`` (score with ReLU's
        gradient through the clip) or both; ``"auto"``: :data:`AUTO_CLIP_TREATMENT`. Our
        extension (the paper used ReLU networks): on ReLU networks all give the spec's maps.

    The result of ``attribute`` is signed, shaped like the inputs and not multiplied by x.

    Example
    -------
    >>> pg = PruneGrad(model, sparsity=0.9)
    >>> maps = pg.attribute(x)            # (N, C, H, W)
    >>> ex = pg.explain(x); print(ex.layer_table())
    """

    name = "prunegrad"

    def __init__(
        self,
        model: nn.Module,
        sparsity: float | None = None,
        threshold: str = "global",
        scoring: str = "taylor",
        inner: str = "gradient",
        inner_options: dict | None = None,
        seed: int | torch.Generator | None = 0,
        alphas: int = 11,
        internal_batch_size: int | None = None,
        clip_treatment: str = "auto",
    ) -> None:
        super().__init__(model)
        if sparsity is None:
            sparsity = getattr(model, "default_sparsity", None)
            sparsity = DEFAULT_SPARSITY if sparsity is None else sparsity  # 0.0 stays 0.0
        self.sparsity = check_sparsity(sparsity)
        if threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        if inner not in INNER_METHODS:
            raise ValueError(f"inner must be one of {tuple(INNER_METHODS)}, got {inner!r}")
        self.threshold, self.scoring, self.inner = threshold, scoring, inner
        self.clip_treatment = check_clip_treatment(clip_treatment, scoring)
        self.inner_options = dict(inner_options or {})
        self.seed, self.alphas, self.internal_batch_size = seed, alphas, internal_batch_size

    def _options(self) -> dict:
        return {
            "sparsity": self.sparsity,
            "threshold": self.threshold,
            "scoring": self.scoring,
            "inner": self.inner,
            "clip_treatment": self.clip_treatment,
        }

    def _generator(self) -> torch.Generator | None:
        if isinstance(self.seed, torch.Generator):
            return self.seed
        return None if self.seed is None else torch.Generator().manual_seed(self.seed)

    # The steps, one by one, on checked inputs (public entry points below check and guard).
    def _scores(self, x: Tensor, target: TargetLike, activations: str = "all") -> NeuronScores:
        return compute_scores(
            self.model,
            x,
            target,
            self.scoring,
            generator=self._generator(),
            alphas=self.alphas,
            internal_batch_size=self.internal_batch_size,
            straight_through=CLIP_TREATMENTS[self.clip_treatment][1],
            activations=activations,
        )

    def _step3(
        self, x: Tensor, target: Tensor, masks: PruningMasks
    ) -> tuple[Tensor, Tensor | None]:
        """Attribution in the pruned network; also its logits when they come for free."""
        with apply_masks(self.model, masks):
            if self.inner == "gradient":
                return input_gradient(self.model, x, target)
            options = dict(self.inner_options)
            if self.inner == "smoothgrad":
                options.setdefault("generator", self._generator())
            if self.inner in ("integrated_gradients", "smoothgrad"):
                options.setdefault("internal_batch_size", self.internal_batch_size)
            return INNER_METHODS[self.inner](self.model, x, target, **options), None

    def _run(
        self, x: Tensor, target: TargetLike, keep_scores: bool = False
    ) -> tuple[NeuronScores, PruningMasks, Tensor, Tensor | None]:
        # Lean interception holds each activation once (as the plain model does); a model that
        # modifies an activation's output in place afterwards is rerun with copies.
        if self.model not in _MODIFYING_MODELS:
            try:
                with interception_copies("lean"):
                    return self._steps(x, target, keep_scores)
            except ActivationModifiedError:
                _MODIFYING_MODELS.add(self.model)
        with interception_copies("copy"):
            return self._steps(x, target, keep_scores)

    def _steps(
        self, x: Tensor, target: TargetLike, keep_scores: bool
    ) -> tuple[NeuronScores, PruningMasks, Tensor, Tensor | None]:
        scores = self._scores(x, target, "all" if keep_scores else "relu6")
        rule = CLIP_TREATMENTS[self.clip_treatment][0]
        masks = masks_from_scores(scores, self.sparsity, self.threshold, rule)
        if not keep_scores:  # free them before step 3's graph is built (peak memory)
            scores.scores = []
            scores.activations = None
        attribution, pruned_logits = self._step3(x, scores.target, masks)
        return scores, masks, attribution, pruned_logits

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        return self._run(inputs, target)[2]

    def explain(
        self,
        inputs: Tensor,
        target: TargetLike = None,
        *,
        return_scores: bool = False,
        return_masks: bool = False,
    ) -> PruneGradExplanation:
        """Run PruneGrad and return the map with what the steps computed along the way."""
        check_model(self.model)
        x = check_inputs(self.model, inputs)
        with preserve_model_state(self.model), torch.enable_grad():
            scores, masks, attribution, pruned_logits = self._run(x, target, return_scores)
            if pruned_logits is None:
                with torch.no_grad(), apply_masks(self.model, masks):
                    pruned_logits = self.model(x)
        return PruneGradExplanation(
            attribution=attribution.detach().to(inputs.device),
            target=scores.target,
            logits=scores.logits,
            pruned_logits=pruned_logits.detach(),
            sites=scores.sites,
            kept_per_site=masks.kept_per_site,
            kept_fraction=masks.kept_fraction,
            thresholds=masks.thresholds,
            sparsity=self.sparsity,
            scores=scores.scores if return_scores else None,
            masks=masks.masks if return_masks else None,
        )

    def neuron_scores(self, inputs: Tensor, target: TargetLike = None) -> NeuronScores:
        """Step 1 alone, with the same checks and guarantees as :meth:`attribute`."""
        check_model(self.model)
        x = check_inputs(self.model, inputs)
        with preserve_model_state(self.model):
            return self._scores(x, target)


def check_clip_treatment(clip_treatment: str, scoring: str) -> str:
    """Resolve ``"auto"`` and check the treatment fits the scoring; returns a key of
    :data:`CLIP_TREATMENTS` (always ``"spec"`` for the non-Taylor scorings)."""
    if clip_treatment == "auto":
        return AUTO_CLIP_TREATMENT if scoring == "taylor" else "spec"
    if clip_treatment not in CLIP_TREATMENTS:
        raise ValueError(
            f"clip_treatment must be 'auto' or one of {tuple(CLIP_TREATMENTS)}, "
            f"got {clip_treatment!r}"
        )
    if clip_treatment != "spec" and scoring != "taylor":
        raise ValueError(
            f"clip_treatment={clip_treatment!r} applies to the 'taylor' scoring only, got "
            f"scoring={scoring!r}; use clip_treatment='spec' (or 'auto')"
        )
    return clip_treatment


def clip_treatment_options(clip_treatment: str, scoring: str = "taylor") -> tuple[str, bool]:
    """``(rule, straight_through)`` for :func:`masks_from_scores` and :func:`compute_scores`.

    Example
    -------
    >>> rule, st = clip_treatment_options("auto")
    >>> masks = masks_from_scores(compute_scores(model, x, straight_through=st), 0.5, rule=rule)
    """
    return CLIP_TREATMENTS[check_clip_treatment(clip_treatment, scoring)]


@dataclass
class Calibration:
    """Result of :func:`calibrate_sparsity`: the chosen sparsity and the whole curve."""

    sparsity: float  # the calibrated sparsity
    change: float  # mean relative probability change it gives
    target_change: float
    evaluated: list[tuple[float, float]]  # (sparsity, mean change) pairs, sorted by sparsity
    rule: str = "first crossing"  # how the sparsity was chosen (see calibrate_sparsity)
    per_sample: list[tuple[float, list[float]]] = field(default_factory=list, repr=False)

    @property
    def monotone(self) -> bool:
        """Whether the mean change never decreases along the evaluated sparsities."""
        changes = [c for _, c in self.evaluated]
        return all(b >= a for a, b in zip(changes, changes[1:]))

    def curve_table(self) -> str:
        """The whole curve as text: sparsity, mean change, and a mark at the chosen point."""
        rows = [f"{'sparsity':>9} {'mean |dp|/p':>12}"]
        for s, c in self.evaluated:
            mark = "  <- chosen" if s == self.sparsity else ""
            rows.append(f"{s:>9.4f} {c:>12.4f}{mark}")
        rows.append(
            f"target {self.target_change:g}; rule: {self.rule}; "
            f"curve {'monotone' if self.monotone else 'NOT monotone'}"
        )
        return "\n".join(rows)


def _changes(
    model: nn.Module,
    x: Tensor,
    scores: NeuronScores,
    sparsity: float,
    threshold: str,
    rule: str = "spec",
) -> Tensor:
    """Relative change of the target probability per sample, (N,), at one sparsity."""
    masks = masks_from_scores(scores, sparsity, threshold, rule)
    with torch.no_grad(), apply_masks(model, masks):
        pruned = model(x)
    p = scores.logits.softmax(-1).gather(1, scores.target.view(-1, 1)).squeeze(1)
    q = pruned.softmax(-1).gather(1, scores.target.view(-1, 1)).squeeze(1)
    return ((p - q).abs() / p.clamp_min(1e-12)).cpu()


def calibrate_sparsity(
    model: nn.Module,
    inputs: Tensor,
    target: TargetLike = None,
    target_change: float = 0.15,
    *,
    threshold: str = "global",
    scoring: str = "taylor",
    clip_treatment: str = "auto",
    tol: float = 0.002,
    max_sparsity: float = 0.999,
    grid: int = 20,
) -> Calibration:
    """The sparsity at which pruning changes the target probability by ``target_change`` on average.

    The change is relative, ``mean_n |p_c(x_n) - p_c^pruned(x_n)| / p_c(x_n)``, as in the
    authors' choice of 90% (VGG16) and 70-75% (ResNet50) for about 15%. Scores are computed once
    (with the same ``clip_treatment`` as :class:`PruneGrad`).

    Rule ("first crossing"), written for curves that need not be monotone (ReLU6 networks under
    the spec's rule): the curve is evaluated on a grid of ``grid`` sparsities ``k / grid`` plus
    ``max_sparsity``; the first grid point whose change reaches the target and the one before it
    bracket the crossing, which bisection refines to within ``tol``; the closer of the two ends
    is returned. The result is the smallest sparsity (to the grid's resolution) at which the
    change reaches the target; on a monotone curve that is the only crossing, as a plain
    bisection would find. If no point reaches the target, the point with the largest change is
    returned. ``evaluated`` holds the whole curve (``curve_table()`` prints it, ``monotone``
    says whether it was), ``per_sample`` the per-sample changes on the grid.

    Example
    -------
    >>> cal = calibrate_sparsity(model, x_val[:256])
    >>> cal.sparsity, cal.change; print(cal.curve_table())
    """
    if not 0.0 < target_change < 1.0:
        raise ValueError(f"target_change must be in (0, 1), got {target_change}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0 (the bisection's sparsity tolerance), got {tol}")
    check_sparsity(max_sparsity)
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    treatment = check_clip_treatment(clip_treatment, scoring)
    rule, straight_through = CLIP_TREATMENTS[treatment]
    check_model(model)
    x = check_inputs(model, inputs)
    with preserve_model_state(model):
        scores = compute_scores(
            model,
            x,
            target,
            scoring,
            generator=torch.Generator().manual_seed(0),
            straight_through=straight_through,
        )
        evaluated: dict[float, float] = {}
        per_sample: dict[float, list[float]] = {}

        def change(s: float) -> float:
            if s not in evaluated:
                per = _changes(model, x, scores, s, threshold, rule)
                evaluated[s] = per.mean().item()
                per_sample[s] = per.tolist()
            return evaluated[s]

        points = sorted({round(k / grid, 6) for k in range(1, grid)} | {max_sparsity})
        points = [p for p in points if p <= max_sparsity]
        curve = [change(p) for p in points]  # the whole curve, always
        first = next((i for i, c in enumerate(curve) if c >= target_change), None)
        if first is None:
            best = max(points, key=change)
        else:
            lo, hi = (points[first - 1] if first > 0 else 0.0), points[first]
            if lo == 0.0:
                evaluated.setdefault(0.0, 0.0)
                per_sample.setdefault(0.0, [0.0] * x.shape[0])
            for _ in range(max(1, math.ceil(math.log2(max(hi - lo, tol) / tol)))):
                if hi - lo <= tol:
                    break
                mid = 0.5 * (lo + hi)
                if change(mid) < target_change:
                    lo = mid
                else:
                    hi = mid
            best = lo if abs(change(lo) - target_change) <= abs(change(hi) - target_change) else hi
        best = round(best, 4)
        change(best)  # the change reported is the one at the returned (rounded) sparsity
    return Calibration(
        best,
        evaluated[best],
        target_change,
        sorted(evaluated.items()),
        "first crossing",
        sorted(per_sample.items()),
    )
