"""PruneGrad on clipped activations (ReLU6): why the Taylor score fails there, and two treatments.

The paper (Khakzar et al., arXiv 1911.11081) used ReLU networks. With ReLU6 (EfficientNet-Lite,
MobileNetV2) a neuron's Taylor score ``|a * dS/da|`` is 0 for three different reasons, and only
one of them means "removing it changes nothing":

* ``inactive``: ``a = 0``. Pruning multiplies 0 by 0: exactly no change.
* ``saturated``: ``a`` sits at the clip (6) and its score is 0.
* ``blocked``: ``0 < a < 6`` but ``dS/da = 0``, because every unit downstream of it is dead or
  saturated (a depthwise 3x3 window whose outputs are all clipped). The first-order estimate of
  removing it is 0; the real change is a finite step that moves those units off their flat
  piece, and can be large.
* ``scored``: score > 0.

:func:`diagnose_scores` classifies every neuron of every site this way and measures what pruning
each class alone does to the output: the lesson in notebook 03. The treatments, options of
:class:`~prunegrad_lite.PruneGrad` (``clip_treatment``, :data:`CLIP_TREATMENTS`), are our extension
of the method (docs/method.md section 6):

* ``"keep_active"``: at clipped sites an active neuron with score 0 is never counted as
  unimportant: it ranks above every scored neuron (among themselves by activation), so it is
  pruned last. Inactive neurons still go first (their pruning is exact).
* ``"straight_through"``: score with the gradient of ReLU in place of ReLU6's (a
  straight-through gradient through the clip), so saturation no longer blocks the scores; the
  forward pass and the pruned network are unchanged.

On networks without a clipped activation both are exactly the spec's rule (a test checks it
bit for bit): they only act on ``relu6`` sites.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.activations import (
    ActivationSite,
    intercept_activations,
    straight_through_clip,
)
from prunegrad_lite.attribution.base import TargetLike, checked, resolve_target, target_scores
from prunegrad_lite.attribution.outputs import relative_change, target_probability
from prunegrad_lite.attribution.pruning import apply_masks

__all__ = [
    "AUTO_CLIP_TREATMENT",
    "CAUSES",
    "CLIP",
    "CLIP_TREATMENTS",
    "ScoreDiagnosis",
    "check_clip_treatment",
    "clip_treatment_options",
    "diagnose_scores",
    "straight_through_clip",
]

#: The upper clip of ReLU6, the only clipped activation the interception recognises.
CLIP = 6.0
#: The classes of :func:`diagnose_scores`, in the order of its tables.
CAUSES = ("inactive", "saturated", "blocked", "scored")


#: What PruneGrad does about clipped activations, for the Taylor scoring: name ->
#: (step 2's rule, straight-through scoring). ``"spec"`` is the method as published; the others
#: are our extension (docs/method.md section 6). On networks without a ReLU6 every treatment
#: gives the spec's masks bit for bit.
CLIP_TREATMENTS: dict[str, tuple[str, bool]] = {
    "spec": ("spec", False),
    "keep_active": ("keep_active", False),
    "straight_through": ("spec", True),
    "straight_through+keep_active": ("keep_active", True),
}
#: The treatment ``clip_treatment="auto"`` (the default) uses with the Taylor scoring, chosen from
#: the measurements on EfficientNet-Lite0 in docs/relu6.md (perf/relu6_candidates.py).
AUTO_CLIP_TREATMENT = "keep_active"


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
    """``(rule, straight_through)`` for :func:`masks_from_scores` and :func:`neuron_scores`.

    Example
    -------
    >>> rule, st = clip_treatment_options("auto")
    >>> masks = masks_from_scores(neuron_scores(model, x, straight_through=st), 0.5, rule=rule)
    """
    return CLIP_TREATMENTS[check_clip_treatment(clip_treatment, scoring)]


@dataclass
class ScoreDiagnosis:
    """Why each neuron's Taylor score is what it is, and what pruning each class does.

    ``counts`` (N, L, 4): neurons per sample, site and cause (order :data:`CAUSES`).
    ``prob_change[cause]`` (N,): relative change ``|p - p'| / p`` of the target probability when
    only that class is pruned (all sites at once); ``"zero score"`` prunes every neuron whose
    score is 0, which is what the spec's rule does as soon as its threshold is 0.
    ``logit_change[cause]`` (N,): the actual change of the target logit, ``taylor_change[cause]``
    (N,): its first-order (Taylor) estimate, ``-sum a * dS/da`` over the pruned neurons.
    """

    sites: list[ActivationSite]
    counts: Tensor  # (N, L, 4) int64
    target: Tensor  # (N,)
    prob: Tensor  # (N,) unpruned target probability
    prob_change: dict[str, Tensor]
    logit_change: dict[str, Tensor]
    taylor_change: dict[str, Tensor]

    @property
    def fractions(self) -> Tensor:
        """Fraction of all neurons of each sample in each cause: (N, 4)."""
        totals = self.counts.sum(1).double()  # (N, 4)
        return totals / totals.sum(1, keepdim=True)

    def table(self, sample: int | None = None) -> str:
        """A plain-text table: share of neurons, Taylor estimate and measured effect per cause.

        ``sample=None`` averages over the samples.
        """
        pick = (
            (lambda t: t.double().mean().item())
            if sample is None
            else (lambda t: t[sample].double().item())
        )
        frac = self.fractions.mean(0) if sample is None else self.fractions[sample]
        rows = [f"{'cause':<11} {'neurons':>8} {'Taylor dS':>10} {'actual dS':>10} {'|dp|/p':>8}"]
        for k, cause in enumerate([*CAUSES, "zero score"]):
            share = frac[:3].sum().item() if cause == "zero score" else frac[k].item()
            rows.append(
                f"{cause:<11} {share:>8.1%} {pick(self.taylor_change[cause]):>10.3f} "
                f"{pick(self.logit_change[cause]):>10.3f} {pick(self.prob_change[cause]):>8.3f}"
            )
        who = "mean over samples" if sample is None else f"sample {sample}"
        rows.append(f"({who}; pruning one class at a time, every site at once)")
        return "\n".join(rows)


def _classify(a: Tensor, g: Tensor | None, kind: str) -> Tensor:
    """Cause code per neuron (index into :data:`CAUSES`), uint8, shaped like ``a``."""
    score = (a * g).abs() if g is not None else torch.zeros_like(a)
    code = torch.full_like(a, 3, dtype=torch.uint8)  # scored
    zero = score == 0
    code[zero & (a > 0)] = 2  # blocked
    if kind == "relu6":
        code[zero & (a >= CLIP)] = 1  # saturated
    code[a == 0] = 0  # inactive
    return code


def diagnose_scores(model: nn.Module, inputs: Tensor, target: TargetLike = None) -> ScoreDiagnosis:
    """Classify every neuron by the cause of its Taylor score and prune each class alone.

    One forward and backward pass for the scores, then one pruned forward pass per class (five
    in all). ``target=None`` explains the predicted class. The model is left unchanged.

    Example
    -------
    >>> d = diagnose_scores(model, x)
    >>> print(d.table())          # blocked: Taylor estimate 0, actual change large on ReLU6 nets
    """
    with checked(model, inputs) as x:
        acts: list[Tensor] = []

        def record(site: ActivationSite, out: Tensor) -> Tensor:
            acts.append(out)
            return out

        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            with intercept_activations(model, record) as site_list:
                logits = model(xg)  # (N, K)
            sites = list(site_list)
            t = resolve_target(target, logits)
            grads = torch.autograd.grad(target_scores(logits, t).sum(), acts, allow_unused=True)
        codes = [_classify(a.detach(), g, s.kind) for a, g, s in zip(acts, grads, sites)]
        first_order = [
            (a.detach() * g).flatten(1) if g is not None else torch.zeros_like(a).flatten(1)
            for a, g in zip(acts, grads)
        ]  # per site (N, m): a * dS/da, the first-order effect of keeping the neuron
        acts.clear()  # free the graph's activations before the pruned passes
        grads = None
        counts = torch.stack(
            [torch.stack([(c.flatten(1) == k).sum(1) for k in range(4)], 1) for c in codes], 1
        )  # (N, L, 4)
        logits = logits.detach()
        idx = torch.arange(x.shape[0], device=logits.device)
        s0 = logits[idx, t]
        p0 = target_probability(logits, t)
        prob_change, logit_change, taylor_change = {}, {}, {}
        groups = {c: (k,) for k, c in enumerate(CAUSES)}
        groups["zero score"] = (0, 1, 2)
        for cause, ks in groups.items():
            pruned = [
                torch.isin(c, torch.tensor(ks, dtype=c.dtype, device=c.device)) for c in codes
            ]
            with torch.no_grad(), apply_masks(model, [~m for m in pruned]):
                out = model(x)  # (N, K)
            prob_change[cause] = relative_change(target_probability(out, t), p0).cpu()
            logit_change[cause] = (out[idx, t] - s0).cpu()
            taylor_change[cause] = -sum(
                (f * m.flatten(1)).sum(1) for f, m in zip(first_order, pruned)
            ).cpu()
    return ScoreDiagnosis(
        sites, counts.cpu(), t.cpu(), p0.cpu(), prob_change, logit_change, taylor_change
    )
