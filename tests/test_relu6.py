"""PruneGrad on clipped activations (issue 12): the diagnosis, the treatments, the calibration.

The oracle is a hand-computable network whose first layer has an active neuron with a blocked
gradient (its only consumer is saturated at 6), a saturated neuron with score 0, an inactive
neuron and a scored neuron.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunegrad_lite as pgl
from prunegrad_lite.attribution import calibration
from prunegrad_lite.attribution.pruning import masks_from_scores, neuron_scores
from prunegrad_lite.attribution.relu6 import (
    AUTO_CLIP_TREATMENT,
    CAUSES,
    CLIP_TREATMENTS,
    straight_through_clip,
)
from helpers import tiny_cnn


class BlockedNet(nn.Module):
    """x (N, 1) -> Linear(1, 4) -> act -> Linear(4, 2) -> act -> Linear(2, 2) logits.

    With x = 1 and ``act="relu6"``::

        h = relu6([2, 3, -1, 7])          = [2, 3, 0, 6]     site 0
        u = relu6(4 h1 + 0.5 h4) = relu6(11) = 6 (saturated)  site 1
        v = relu6(h2)            = 3
        logits = [u + v, 0]

    dS/dh1 = 4 * relu6'(11) = 0: h1 (a = 2) is active with a blocked gradient, h4 (a = 6) is
    saturated with score 0, h3 is inactive, h2 is scored (3). Pruning h1 alone: u = relu6(3)
    = 3, the target logit drops by 3 while its Taylor estimate is 0.
    With ``act="relu"`` and ``w_u = -4`` the same h1 is blocked by a dead unit instead.
    """

    def __init__(self, act: str = "relu6") -> None:
        super().__init__()
        self.act = act
        self.fc1, self.fc2, self.fc3 = nn.Linear(1, 4), nn.Linear(4, 2), nn.Linear(2, 2)
        w_u = 4.0 if act == "relu6" else -4.0
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[2.0], [3.0], [-1.0], [7.0]]))
            self.fc1.bias.zero_()
            self.fc2.weight.copy_(torch.tensor([[w_u, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.0]]))
            self.fc2.bias.zero_()
            self.fc3.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
            self.fc3.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu6 if self.act == "relu6" else F.relu
        return self.fc3(act(self.fc2(act(self.fc1(x)))))


X = torch.ones(1, 1)


def test_hand_computed_scores_and_causes():
    model = BlockedNet().eval()
    s = neuron_scores(model, X)
    torch.testing.assert_close(s.scores[0], torch.tensor([[0.0, 3.0, 0.0, 0.0]]))
    torch.testing.assert_close(s.scores[1], torch.tensor([[6.0, 3.0]]))
    d = pgl.diagnose_scores(model, X)
    # site 0: inactive h3, saturated h4, blocked h1, scored h2; site 1: u and v scored
    assert d.counts[0, 0].tolist() == [1, 1, 1, 1]
    assert d.counts[0, 1].tolist() == [0, 0, 0, 2]
    assert d.fractions[0].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 3 / 6])
    # pruning inactive neurons is exact; the blocked one breaks the Taylor estimate
    assert d.prob_change["inactive"].item() == 0.0 and d.logit_change["inactive"].item() == 0.0
    assert d.taylor_change["blocked"].item() == 0.0
    assert d.logit_change["blocked"].item() == pytest.approx(-3.0)
    assert d.logit_change["saturated"].item() == pytest.approx(0.0)  # u stays at 6
    assert d.logit_change["zero score"].item() == pytest.approx(-6.0)  # u = relu6(0)
    assert d.taylor_change["scored"].item() == pytest.approx(-3.0 - 6.0 - 3.0)
    text = d.table()
    assert all(c in text for c in CAUSES) and "zero score" in text


def test_keep_active_keeps_the_blocked_neuron_the_spec_prunes_it():
    model = BlockedNet().eval()
    s = neuron_scores(model, X)
    # 6 neurons; sparsity 0.1 puts the percentile at 0 (three zero scores): the spec prunes all
    spec = masks_from_scores(s, 0.1)
    assert spec.masks[0].tolist() == [[False, True, False, False]]
    keep = masks_from_scores(s, 0.1, rule="keep_active")
    assert keep.masks[0][0, 0] and keep.masks[0][0, 3]  # h1 (blocked) and h4 (saturated) kept
    assert not keep.masks[0][0, 2]  # the inactive neuron still goes first
    pruned = {}
    for name, treatment in (("spec", "spec"), ("keep", "keep_active")):
        ex = pgl.PruneGrad(model, sparsity=0.1, clip_treatment=treatment).explain(X)
        pruned[name] = ex.pruned_logits[0, 0].item()
    assert pruned["spec"] == pytest.approx(3.0)  # u = relu6(0), v = 3
    assert pruned["keep"] == pytest.approx(9.0)  # the network is unchanged
    # protected neurons rank above every scored one, the larger activation kept longest
    keys = pgl.attribution.pruning.rule_keys(s)
    assert keys[0][0, 0] > keys[1].max() and keys[0][0, 3] > keys[0][0, 0]
    with pytest.raises(ValueError, match="needs the activations"):
        masks_from_scores(s.scores, 0.1, rule="keep_active")


def test_straight_through_scores_the_blocked_neuron():
    model = BlockedNet().eval()
    s = neuron_scores(model, X, straight_through=True)
    # ReLU's gradient through the clip: dS/dh1 = 4, dS/dh4 = 0.5
    torch.testing.assert_close(s.scores[0], torch.tensor([[8.0, 3.0, 0.0, 3.0]]))
    torch.testing.assert_close(s.scores[1], torch.tensor([[6.0, 3.0]]))
    torch.testing.assert_close(s.logits, neuron_scores(model, X).logits)  # same forward pass
    m = pgl.PruneGrad(model, sparsity=0.1, clip_treatment="straight_through").explain(
        X, return_masks=True
    )
    assert m.masks[0][0, 0]  # h1 kept
    x = torch.tensor([-1.0, 1.0, 7.0], requires_grad=True)
    with straight_through_clip():
        y = F.relu6(x)
    assert y.tolist() == [0.0, 1.0, 6.0]
    assert torch.autograd.grad(y.sum(), x)[0].tolist() == [0.0, 1.0, 1.0]


def _relu_nets():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 8, 8, generator=gen)
    return [
        (BlockedNet("relu").eval(), X),
        (tiny_cnn("inplace", bn=True), x),  # in-place nn.ReLU, BatchNorm
        (tiny_cnn("reused"), x),  # one nn.ReLU called twice
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_relu_networks_are_identical_under_every_treatment(index):
    model, x = _relu_nets()[index]
    if index == 0:  # the ReLU toy has an active neuron with zero gradient: the test can fail
        d = pgl.diagnose_scores(model, x)
        assert d.counts[0, 0, CAUSES.index("blocked")] == 2  # h1 and h4 feed a dead unit
    for sparsity in (0.0, 0.3, 0.5, 0.9):
        reference = pgl.PruneGrad(model, sparsity=sparsity, clip_treatment="spec").explain(
            x, return_masks=True
        )
        for treatment in (*CLIP_TREATMENTS, "auto"):
            ex = pgl.PruneGrad(model, sparsity=sparsity, clip_treatment=treatment).explain(
                x, return_masks=True
            )
            assert torch.equal(ex.attribution, reference.attribution), (treatment, sparsity)
            assert all(torch.equal(a, b) for a, b in zip(ex.masks, reference.masks))


def test_clip_treatment_options_are_checked():
    model = BlockedNet().eval()
    assert pgl.PruneGrad(model).clip_treatment == AUTO_CLIP_TREATMENT
    assert pgl.PruneGrad(model, scoring="random").clip_treatment == "spec"
    with pytest.raises(ValueError, match="clip_treatment must be"):
        pgl.PruneGrad(model, clip_treatment="clip")
    with pytest.raises(ValueError, match="taylor"):
        pgl.PruneGrad(model, scoring="random", clip_treatment="keep_active")
    with pytest.raises(ValueError, match="rule must be"):
        masks_from_scores(neuron_scores(model, X), 0.5, rule="nope")


def test_calibration_takes_the_first_crossing_of_a_non_monotone_curve(monkeypatch):
    """Known answer: a curve that jumps over the target at 0.30, falls back, and rises late."""

    def fake_changes(model, x, scores, s, threshold, rule="spec"):
        value = 0.4 if 0.3 <= s < 0.4 else (0.05 if s < 0.8 else 0.9)
        return torch.full((x.shape[0],), value)

    monkeypatch.setattr(calibration, "_changes", fake_changes)
    model = BlockedNet().eval()
    cal = pgl.calibrate_sparsity(model, X, target_change=0.15, tol=0.002)
    assert not cal.monotone
    assert 0.298 <= cal.sparsity <= 0.3  # the first crossing, not the bisection's 0.8
    assert cal.change == pytest.approx(0.05)
    assert cal.rule == "first crossing" and "NOT monotone" in cal.curve_table()
    sp = [s for s, _ in cal.evaluated]
    assert sp == sorted(sp) and {0.05, 0.5, 0.95} <= set(sp)  # the whole curve is reported
    assert len(cal.per_sample) == len(cal.evaluated)
