"""PruneGrad: the input gradient of the network pruned for this input (docs/method.md section 1).

Read :func:`prunegrad` first: the whole method in three steps,

1. score every neuron for the target logit S_c, ``|a * dS_c/da|``
   (:func:`~prunegrad_lite.neuron_scores`, in :mod:`~prunegrad_lite.attribution.pruning`);
2. prune, per sample, the neurons at or below the ``sparsity`` percentile of the scores
   (:func:`~prunegrad_lite.masks_from_scores`, same module, with the exact percentile of
   :mod:`~prunegrad_lite.attribution.percentile`; the rule :data:`DEFAULT_RULE`);
3. with the masks fixed, take ``dS_c^pruned / dx`` (:func:`~prunegrad_lite.apply_masks` and
   :func:`~prunegrad_lite.attribution.base.input_gradient`).

:class:`PruneGrad` is the Captum-shaped interface: its defaults run :func:`prunegrad`. Its options
swap a step for a variant: a per-layer threshold, another ReLU6 treatment
(:mod:`~prunegrad_lite.attribution.relu6`), or from :mod:`~prunegrad_lite.attribution.variants`
the random-pruning control, PruneInt, Integrated Gradients / SmoothGrad / Gradient x Input in the
pruned network and the iterative perturbation. :meth:`PruneGrad.explain` keeps what the steps
computed, for teaching. Choosing the sparsity: :mod:`~prunegrad_lite.attribution.calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import ActivationSite
from prunegrad_lite.attribution.lean import lean_interception
from prunegrad_lite.attribution.base import Attribution, TargetLike, checked, input_gradient
from prunegrad_lite.attribution.outputs import relative_change, target_probability
from prunegrad_lite.attribution.pruning import (
    SCORINGS,
    THRESHOLDS,
    NeuronScores,
    PruningMasks,
    apply_masks,
    check_sparsity,
    masks_from_scores,
    neuron_scores,
)
from prunegrad_lite.attribution.relu6 import (
    AUTO_CLIP_TREATMENT,
    CLIP_TREATMENTS,
    check_clip_treatment,
)
from prunegrad_lite.attribution.variants import INNER_METHODS

__all__ = [
    "DEFAULT_RULE",
    "DEFAULT_SPARSITY",
    "PruneGrad",
    "PruneGradExplanation",
    "prunegrad",
    "resolve_sparsity",
]

#: Used for models that carry no calibrated default (``model.default_sparsity``): the authors'
#: ResNet50 value. Calibrate your own with :func:`~prunegrad_lite.calibrate_sparsity`.
DEFAULT_SPARSITY = 0.7
#: Step 2's rule by default: the default clip treatment's (docs/method.md section 6). On ReLU
#: networks it prunes exactly the published ``score <= thr``, bit for bit.
DEFAULT_RULE = CLIP_TREATMENTS[AUTO_CLIP_TREATMENT][0]


def resolve_sparsity(model: nn.Module, sparsity: float | None) -> float:
    """``sparsity``, or for None the model's calibrated ``default_sparsity`` or 0.7; checked."""
    if sparsity is None:
        sparsity = getattr(model, "default_sparsity", None)
        sparsity = DEFAULT_SPARSITY if sparsity is None else sparsity  # 0.0 stays 0.0
    return check_sparsity(sparsity)


@lean_interception  # each activation held once, as in the plain model (docs/method.md section 7)
def prunegrad(
    model: nn.Module, x: Tensor, target: TargetLike = None, sparsity: float | None = None
) -> Tensor:
    """PruneGrad's map of ``target`` for each image of ``x`` (N, C, H, W): signed, like ``x``.

    ``target``: None (the predicted class), an int or one class per sample; ``sparsity``: the
    fraction of neurons pruned (None: ``model.default_sparsity``, else 0.7). The model is left
    unchanged. ``PruneGrad(model, sparsity).attribute(x, target)`` runs this function.

    Example
    -------
    >>> maps = prunegrad(model, x, sparsity=0.9)       # (N, C, H, W)
    """
    sparsity = resolve_sparsity(model, sparsity)
    # check the model and x (a private copy on the model's device); the model is restored on exit
    with checked(model, x) as inputs:
        # step 1: score every neuron of every ReLU call for the target logit S_c: |a * dS_c/da|
        scores = neuron_scores(  # relu6: keep what step 2 reads; names: not needed here
            model, inputs, target, activations="relu6", names=False
        )
        # step 2: per sample, prune the neurons scoring at or below the sparsity percentile
        masks = masks_from_scores(scores, sparsity, "global", DEFAULT_RULE)
        target, scores = scores.target, None  # (N,) classes; the scores are freed before step 3
        # step 3: with the masks fixed, the input gradient of S_c in the pruned network
        with apply_masks(model, masks):
            grad, _ = input_gradient(model, inputs, target)  # (N, C, H, W)
    return grad.to(x.device)


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
        return target_probability(self.logits, self.target)

    @property
    def pruned_prob(self) -> Tensor:
        """Target softmax probability of the pruned network (N,)."""
        return target_probability(self.pruned_logits, self.target)

    @property
    def prob_change(self) -> Tensor:
        """Relative change of the target probability caused by pruning, ``|p - p'| / p`` (N,)."""
        return relative_change(self.pruned_prob, self.prob)

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
        self.sparsity = resolve_sparsity(model, sparsity)
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

    # The variants' steps, on inputs checked by the public entry points (attribute, explain).
    def _scores(self, x: Tensor, target: TargetLike, activations: str = "all") -> NeuronScores:
        return neuron_scores(
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
        return lean_interception(PruneGrad._steps)(self.model, self, x, target, keep_scores)

    @staticmethod
    def _steps(
        model: nn.Module, self: PruneGrad, x: Tensor, target: TargetLike, keep_scores: bool
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
        options = (self.scoring, self.threshold, self.inner, CLIP_TREATMENTS[self.clip_treatment])
        if options == ("taylor", "global", "gradient", (DEFAULT_RULE, False)):
            return prunegrad(self.model, inputs, target, self.sparsity)  # the method itself
        return self._run(inputs, target)[2]  # a variant (docs/method.md section 1, "Variants")

    def explain(
        self,
        inputs: Tensor,
        target: TargetLike = None,
        *,
        return_scores: bool = False,
        return_masks: bool = False,
    ) -> PruneGradExplanation:
        """Run PruneGrad and return the map with what the steps computed along the way."""
        with checked(self.model, inputs) as x, torch.enable_grad():
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
        with checked(self.model, inputs) as x:
            return self._scores(x, target)
