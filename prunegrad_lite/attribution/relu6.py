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
:class:`~prunegrad_lite.PruneGrad` (``clip_treatment``), are our extension of the method:

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

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from prunegrad_lite.attribution.activations import (
    ActivationSite,
    _parse_call,
    intercept_activations,
)
from prunegrad_lite.attribution.base import (
    TargetLike,
    check_inputs,
    check_model,
    preserve_model_state,
    resolve_target,
    target_scores,
)

__all__ = [
    "CAUSES",
    "CLIP",
    "ScoreDiagnosis",
    "diagnose_scores",
    "straight_through_clip",
]

#: The upper clip of ReLU6, the only clipped activation the interception recognises.
CLIP = 6.0
#: The classes of :func:`diagnose_scores`, in the order of its tables.
CAUSES = ("inactive", "saturated", "blocked", "scored")


class _StraightThroughClip(TorchFunctionMode):
    """ReLU6 calls return ReLU6's value with ReLU's gradient (1 for every ``x > 0``)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        parsed = _parse_call(func, args, kwargs)
        if parsed is None or parsed[0] != "relu6" or parsed[2]:
            return func(*args, **kwargs)  # not ReLU6, or in place (the interception copies)
        x = parsed[1]
        r = torch.relu(x)
        return r - (r - F.relu6(x)).detach()


@contextlib.contextmanager
def straight_through_clip() -> Iterator[None]:
    """Inside the block, ReLU6 passes gradient through its clip as ReLU does; values unchanged.

    Enter it *outside* :func:`~prunegrad_lite.intercept_activations` (which then sees the
    straight-through output as the site's output). Used by ``clip_treatment="straight_through"``.

    Example
    -------
    >>> with straight_through_clip():
    ...     y = F.relu6(x)          # same values; dy/dx = 1 where x > 0
    """
    with _StraightThroughClip():
        yield


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
    from prunegrad_lite.attribution.pruning import apply_masks

    check_model(model)
    x = check_inputs(model, inputs)
    with preserve_model_state(model):
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
        p0 = logits.softmax(-1)[idx, t]
        prob_change, logit_change, taylor_change = {}, {}, {}
        groups = {c: (k,) for k, c in enumerate(CAUSES)}
        groups["zero score"] = (0, 1, 2)
        for cause, ks in groups.items():
            pruned = [
                torch.isin(c, torch.tensor(ks, dtype=c.dtype, device=c.device)) for c in codes
            ]
            with torch.no_grad(), apply_masks(model, [~m for m in pruned]):
                out = model(x)  # (N, K)
            prob_change[cause] = ((p0 - out.softmax(-1)[idx, t]).abs() / p0).cpu()
            logit_change[cause] = (out[idx, t] - s0).cpu()
            taylor_change[cause] = -sum(
                (f * m.flatten(1)).sum(1) for f, m in zip(first_order, pruned)
            ).cpu()
    return ScoreDiagnosis(
        sites, counts.cpu(), t.cpu(), p0.cpu(), prob_change, logit_change, taylor_change
    )
