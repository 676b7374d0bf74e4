"""Known answers: a task whose important pixels are known by construction.

The model looks only at one 2x2 patch of an 8x8 image (both channels). A map that marks the
patch (``perfect``) must get the best LeRF, MoRF and ROAR scores, the inverted map the worst,
and the random map must sit in between. A map that ignores the weights keeps similarity 1
through every randomisation stage.
"""

from __future__ import annotations

import copy
import functools
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.base import Attribution, TargetLike
from prunegrad_lite.benchmarks import (
    PixelPerturbationConfig,
    RoarConfig,
    SanityConfig,
    pixel_perturbation,
    plot_curves,
    removal_mask_images,
    roar,
    sanity_checks,
)
from prunegrad_lite.models import FashionResNet
from prunegrad_lite.training import TrainConfig

ROWS, COLS = slice(2, 4), slice(5, 7)  # the patch: 4 of the 64 pixels (6.25%)


def patch_mask(channels: int) -> Tensor:
    mask = torch.zeros(1, channels, 8, 8)
    mask[:, :, ROWS, COLS] = 1.0
    return mask


class PatchModel(nn.Module):
    """logits = (s / 4, -s / 4), s the sum of the patch over all channels: nothing else counts."""

    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        self.register_buffer("mask", patch_mask(channels))
        self.scale = nn.Parameter(torch.tensor(0.25))  # a parameter, so there is a stage

    def forward(self, x: Tensor) -> Tensor:  # (N, C, 8, 8) -> (N, 2)
        s = (x * self.mask).sum(dim=(1, 2, 3)) * self.scale
        return torch.stack([s, -s], dim=1)


class PerfectMap(Attribution):
    """1 on the patch (channel 0 only: removal must still take every channel), 0 elsewhere."""

    name = "perfect"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        out = torch.zeros_like(inputs)
        out[:, 0, ROWS, COLS] = 1.0
        return out


class InvertedMap(Attribution):
    """The perfect map upside down: the patch is the least important region."""

    name = "inverted"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        out = torch.ones_like(inputs)
        out[:, :, ROWS, COLS] = 0.0
        return out


def patch_images(n: int, channels: int, seed: int) -> tuple[Tensor, Tensor]:
    """Noise images whose patch carries the label: +patch for class 0, -patch for class 1."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, 8, 8, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    sign = (1 - 2 * y).float().view(n, 1, 1, 1)
    x[:, :, ROWS, COLS] = sign * (0.5 + torch.rand(n, channels, 2, 2, generator=gen))
    return x, y


# ---- pixel perturbation -------------------------------------------------------------------------
def test_pixel_perturbation_perfect_best_inverted_worst_random_between():
    model = PatchModel().eval()
    images, _ = patch_images(200, 2, seed=0)
    result = pixel_perturbation(
        model, images, [PerfectMap, InvertedMap, "random"], device="cpu", progress=False
    )
    lerf = {m: result.score(m, "lerf_auc").mean for m in result.methods}
    morf = {m: result.score(m, "morf_auc").mean for m in result.methods}
    assert lerf["perfect"] == 0.0  # the first 10% of the least important pixels miss the patch
    assert lerf["perfect"] < lerf["random"] < lerf["inverted"]
    assert morf["inverted"] == 0.0
    assert morf["perfect"] > morf["random"] > morf["inverted"]
    # at 10% (6 pixels) MoRF has removed the whole patch in *both* channels, although the
    # perfect map marks only channel 0: p goes to 1/2 exactly
    p = model(images).softmax(1).max(1).values
    expected = ((p - 0.5).abs() / p).mean().item()
    assert result.score("perfect", "morf@10%").mean == pytest.approx(expected, rel=1e-5)


def test_pixel_perturbation_does_not_depend_on_batching_and_leaves_the_model_alone():
    model = PatchModel().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, _ = patch_images(30, 2, seed=1)
    kwargs = dict(device="cpu", progress=False, seed=3)
    a = pixel_perturbation(
        model,
        images,
        ["random", PerfectMap],
        PixelPerturbationConfig(batch_size=7, forward_batch=5),
        **kwargs,
    )
    b = pixel_perturbation(
        model,
        images,
        ["random", PerfectMap],
        PixelPerturbationConfig(batch_size=64, forward_batch=4096),
        **kwargs,
    )
    assert [s.mean for s in a.scores] == pytest.approx([s.mean for s in b.scores], abs=1e-6)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_pixel_perturbation_replacement_options_change_what_is_measured():
    model = PatchModel().eval()
    images, _ = patch_images(40, 2, seed=2)
    run = {
        how: pixel_perturbation(
            model,
            images,
            [PerfectMap],
            PixelPerturbationConfig(replacement=how, orders=("morf",)),
            device="cpu",
            progress=False,
            mean=(0.5, 0.5),
            std=(0.5, 0.5),
        )
        .score("perfect", "morf@10%")
        .mean
        for how in ("mean", "black", "blur", "noisy_linear")
    }
    assert len(set(run.values())) == 4


def test_pixel_perturbation_stores_per_image_values_for_every_replacement():
    model = PatchModel().eval()
    images, _ = patch_images(12, 2, seed=4)
    config = PixelPerturbationConfig(
        fractions=(0.05, 0.1), replacement=("mean", "noisy_linear"), noise_std=0.0
    )
    result = pixel_perturbation(
        model, images, ["random", PerfectMap], config, device="cpu", progress=False
    )
    for variant in ("lerf", "morf", "lerf_noisy_linear", "morf_noisy_linear"):
        for step in (0, 1):
            values = result.unit_values("perfect", "prob_change", variant, step)
            assert values.shape == (1, 12)
            _, mean, _, _ = result.curve("perfect", "prob_change", variant)
            assert values.mean() == pytest.approx(mean[step], rel=1e-6)
        auc = result.unit_values("perfect", "prob_change_auc", variant, 0)
        assert auc.mean() == pytest.approx(result.score("perfect", f"{variant}_auc").mean)
    # the input change: with "mean" (0), the mean |x| of the removed pixels; MoRF 5% removes 3
    # of the 4 patch pixels, whose |x| lies in [0.5, 1.5] by construction
    delta = result.unit_values("perfect", "abs_delta_x", "morf", 0)[0]
    assert delta.shape == (12,) and ((delta >= 0.5) & (delta <= 1.5)).all()
    assert "lerf_noisy_linear@10%" in result.score_names()
    assert result.settings["replacements"][1]["variants"] == [
        "lerf_noisy_linear",
        "morf_noisy_linear",
    ]


# ---- ROAR ---------------------------------------------------------------------------------------
def linear_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))


RECIPE = TrainConfig(epochs=4, batch_size=64, lr=0.05, augment=False, num_classes=2)


def test_roar_perfect_best_inverted_worst_random_between(tmp_path):
    train = patch_images(768, 1, seed=10)
    test = patch_images(384, 1, seed=11)
    config = RoarConfig(fractions=(0.1, 0.5, 0.9), seeds=(0,), recipe=RECIPE, longer_reference=0)
    result = roar(
        PatchModel(1).eval(),
        train,
        test,
        [PerfectMap, InvertedMap, "random"],
        config,
        cache_dir=tmp_path,
        device="cpu",
        progress=False,
        model_fn=linear_model,
    )
    auc = {m: result.score(m, "roar_auc").mean for m in result.methods}
    assert auc["perfect"] < auc["random"] < auc["inverted"]
    assert auc["perfect"] < 0.65 and auc["inverted"] > 0.9  # chance is 0.5, the patch gives ~1
    assert min(result.settings["reference_accuracy"]) > 0.9  # the recipe learns the task
    verdicts = {
        (c["a"], c["b"], c["at"]): c["verdict"] for c in result.settings["comparisons"]
    }  # per-image paired differences, 95% intervals: perfect loses more than random
    assert verdicts[("perfect", "random", "area")] == "AGREES"
    assert verdicts[("inverted", "random", "area")] == "DISAGREES"


class LabelMap(Attribution):
    """Marks the left half of the image for class 0, the right half for class 1: its removal
    mask tells the class, whatever is left in the image."""

    name = "label_map"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        out = torch.zeros_like(inputs)
        left = torch.as_tensor(target).view(-1) == 0
        out[left, :, :, :4] = 1.0
        out[~left, :, :, 4:] = 1.0
        return out


def test_roar_mask_only_control_detects_a_mask_that_gives_the_class_away(tmp_path):
    train = patch_images(768, 1, seed=12)
    test = patch_images(384, 1, seed=13)
    config = RoarConfig(
        fractions=(0.5,), seeds=(0,), recipe=RECIPE, mask_only=True, longer_reference=0
    )
    run = functools.partial(
        roar,
        PatchModel(1).eval(),
        train,
        test,
        [PerfectMap, LabelMap, "random"],
        config,
        cache_dir=tmp_path,
        device="cpu",
        progress=False,
        model_fn=linear_model,
    )
    result = run()
    leak = {m: result.score(m, "mask_only@50%").mean for m in result.methods if m != "random"}
    assert leak["label_map"] > 0.95  # the mask alone says the class
    assert leak["perfect"] < 0.6  # the same mask for all images: nothing to read
    # the random ranking's mask is independent of the image (chance): it is not trained
    assert all(s.method != "random" for s in result.scores if s.name.startswith("mask_only"))
    assert result.settings["chance"] == 0.5 and result.settings["mask_only"]
    # ROAR alone cannot tell: the retrained network reads the class from where pixels are gone
    assert result.score("label_map", "acc@50%").mean > 0.95
    assert result.score("perfect", "acc@50%").mean < 0.65  # the patch is gone, nothing leaks
    # the control's cells are cached apart from ROAR's
    variants = {c["variant"] for c in result.settings["cells"]}
    assert variants == {"roar", "mask_only"}
    assert len(list(tmp_path.rglob("label_map.mask_only/*.json"))) == 1
    fig = plot_curves(result)  # two panels, ROAR and the control, with a chance line
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()][1].startswith("the removal mask")
    assert "chance" in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)
    assert run().scores == result.scores  # read back from the cache


def test_removal_mask_images_mark_the_removed_pixels_in_every_channel():
    rank = torch.arange(16).flip(0).view(1, 16)  # pixel 15 is the most important
    masks = removal_mask_images(rank, 0.25, 3, (4, 4))
    assert masks.shape == (1, 3, 4, 4) and masks.sum() == 3 * 4
    assert torch.equal(masks[0, 0].flatten()[12:], torch.ones(4))
    assert torch.equal(masks[0, 1], masks[0, 2])


# ---- sanity checks ------------------------------------------------------------------------------
def test_weight_independent_maps_keep_similarity_one_at_every_stage():
    model = FashionResNet(width=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    result = sanity_checks(
        model, images, ["edge", "gradient"], SanityConfig(depth=1), device="cpu", progress=False
    )
    for variant in ("cascading", "independent"):
        for measure in ("spearman_abs", "spearman", "ssim"):
            _, mean, std, labels = result.curve("edge", measure, variant)
            assert mean == pytest.approx([1.0] * len(labels)) and max(std) < 1e-9
    assert list(labels) == ["original", "fc", "layer3", "layer2", "layer1", "conv1"]
    # the gradient depends on the weights: its similarity falls once the logits are randomised
    assert result.score("gradient", "spearman_abs@top").mean < 0.9
    assert result.score("gradient", "ssim@all").mean < 0.9
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class VanishesWhenRandomised(Attribution):
    """|x| while the PatchModel's ``scale`` is 0.25 (its value when built), 0 everywhere after."""

    name = "vanishes"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        intact = bool(torch.all(self.model.scale == 0.25))
        return inputs.abs() if intact else torch.zeros_like(inputs)


@pytest.mark.parametrize("value", [0.0, None])
def test_a_map_that_becomes_constant_counts_as_similarity_zero_and_is_reported(value):
    images, _ = patch_images(5, 2, seed=0)
    result = sanity_checks(
        PatchModel().eval(),
        images,
        [VanishesWhenRandomised, "edge"],
        SanityConfig(constant_similarity=value),
        device="cpu",
        progress=False,
    )
    top = result.score("vanishes", "spearman_abs@top")
    if value is None:  # undefined for every image: left out, no value
        assert top.n == 0 and top.mean != top.mean
    else:
        assert top.n == 5 and top.mean == 0.0 and top.std == 0.0
        assert result.score("vanishes", "spearman@all").mean == 0.0
    assert result.score("edge", "spearman_abs@all").mean == pytest.approx(1.0)  # never constant
    # the counts: none at step 0 (the original), all 5 once the only stage is randomised
    assert result.settings["constant_maps"]["cascading"]["vanishes"] == [0, 5]
    assert result.settings["constant_maps"]["independent"]["edge"] == [0, 0]
    with pytest.raises(ValueError, match="constant_similarity"):
        SanityConfig(constant_similarity=2.0)


def test_sanity_draws_inits_and_constant_maps_are_reported_both_ways():
    images, _ = patch_images(5, 2, seed=0)
    config = SanityConfig(draws=3, measures=("spearman_abs", "ssim"), constant_similarity=0.0)
    result = sanity_checks(
        PatchModel().eval(),
        images,
        [VanishesWhenRandomised, "edge"],
        config,
        device="cpu",
        progress=False,
    )
    counted = result.unit_values("vanishes", "spearman_abs", "cascading", 1)
    defined = result.unit_values("vanishes", "spearman_abs_defined", "cascading", 1)
    assert counted.shape == (3, 5) and (counted == 0).all() and np.isnan(defined).all()
    flags = result.unit_values("vanishes", "constant", "cascading", 1)
    assert (flags == 1).all() and result.settings["constant_maps"]["cascading"]["vanishes"] == [
        0,
        15,
    ]
    assert result.score("vanishes", "spearman_abs_defined@top").n == 0
    edge = result.unit_values("edge", "spearman_abs", "independent", -1)  # mean over stages
    assert edge.shape == (3, 5) and edge == pytest.approx(np.ones((3, 5)))
    assert "ssim_defined" not in {p.metric for p in result.curves}  # SSIM is always defined


def test_reset_init_uses_each_layers_own_initialiser_and_the_target_option():
    from prunegrad_lite.benchmarks.sanity import randomisation_stages, reset_stage_

    model = FashionResNet(width=4).eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    stages = randomisation_stages(model, x[:1])
    conv1 = stages[-1]  # conv1 with its BatchNorm
    net = copy.deepcopy(model)
    with torch.no_grad():
        bn = dict(net.named_modules())[conv1.modules[1]]
        bn.running_mean.fill_(3.0)
        bn.weight.fill_(5.0)
    state = torch.random.get_rng_state()
    reset_stage_(net, conv1, torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    again = copy.deepcopy(model)
    reset_stage_(again, conv1, torch.Generator().manual_seed(1))
    conv = conv1.modules[0]
    w_net, w_again = (dict(m.named_modules())[conv].weight for m in (net, again))
    w_model = dict(model.named_modules())[conv].weight
    assert torch.equal(w_net, w_again) and not torch.equal(w_net, w_model)
    bound = 1 / math.sqrt(w_net[0].numel())  # Kaiming-uniform(a=sqrt(5)): U(-1/sqrt(fan_in), .)
    assert float(w_net.detach().abs().max()) <= bound
    before = copy.deepcopy(model.state_dict())
    result = sanity_checks(
        model,
        x,
        ["gradient"],
        SanityConfig(
            depth=1,
            inits=("authors", "reset"),
            target="randomised",
            draws=2,
            measures=("spearman_abs",),
        ),
        device="cpu",
        progress=False,
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.unit_values("gradient", "spearman_abs", "cascading_reset", 1).shape == (2, 4)
    assert "spearman_abs@top_reset" in result.score_names()
    assert result.settings["target_option"] == "randomised"
    with pytest.raises(ValueError, match="inits"):
        SanityConfig(inits=("xavier",))
    with pytest.raises(ValueError, match="target"):
        SanityConfig(target="other")
    with pytest.raises(ValueError, match="reset_parameters"):
        sanity_checks(
            PatchModel().eval(),
            x[:, :, :8, :8].repeat(1, 2, 1, 1),
            ["gradient"],
            SanityConfig(inits=("reset",)),
            device="cpu",
            progress=False,
        )
