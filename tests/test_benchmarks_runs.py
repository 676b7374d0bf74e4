"""How the benchmarks run: stages, randomisation on copies, caching and resuming, clear errors."""

from __future__ import annotations

import copy
import dataclasses
import importlib

import matplotlib.pyplot as plt
import pytest
import torch
from helpers import hook_count
from test_benchmarks_known_answers import PatchModel, PerfectMap, linear_model, patch_images

from prunegrad_lite.benchmarks import (
    PixelPerturbationConfig,
    plot_curves,
    plot_sanity_maps,
    RoarConfig,
    SanityConfig,
    pixel_perturbation,
    randomisation_stages,
    roar,
    sanity_checks,
)
from prunegrad_lite.benchmarks.attribution_maps import check_methods, maps_for_images
from prunegrad_lite.benchmarks.roar import mask_top_pixels, recipe_hash
from prunegrad_lite.benchmarks.sanity import randomise_stage_
from prunegrad_lite.models import FashionResNet
from prunegrad_lite.training import TrainConfig

# the module, not the function of the same name that prunegrad_lite.benchmarks exports
# a ROAR cell retrains in roar_cells (the unit an executor runs)
roar_cells = importlib.import_module("prunegrad_lite.benchmarks.roar_cells")
roar_inputs = importlib.import_module("prunegrad_lite.benchmarks.roar_inputs")


@pytest.fixture
def resnet() -> FashionResNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FashionResNet(width=4).eval()


# ---- sanity checks ------------------------------------------------------------------------------
def test_stages_go_from_the_logits_down_with_norms_joined(resnet):
    stages = randomisation_stages(resnet, torch.zeros(1, 1, 28, 28))
    assert [s.name for s in stages] == [
        "fc",
        "layer3.shortcut.0",
        "layer3.conv2",
        "layer3.conv1",
        "layer2.shortcut.0",
        "layer2.conv2",
        "layer2.conv1",
        "layer1.conv2",
        "layer1.conv1",
        "conv1",
    ]
    assert stages[1].modules == ("layer3.shortcut.0", "layer3.shortcut.1")
    assert stages[-1].modules == ("conv1", "bn1")
    blocks = randomisation_stages(resnet, torch.zeros(1, 1, 28, 28), depth=1)
    assert [s.name for s in blocks] == ["fc", "layer3", "layer2", "layer1", "conv1"]
    assert len(blocks[1].modules) == 6 and hook_count(resnet) == 0


def test_randomise_stage_draws_from_the_generator(resnet):
    stage = randomisation_stages(resnet, torch.zeros(1, 1, 28, 28))[1]
    a, b = copy.deepcopy(resnet), copy.deepcopy(resnet)
    randomise_stage_(a, stage, torch.Generator().manual_seed(5), std=0.1)
    randomise_stage_(b, stage, torch.Generator().manual_seed(5), std=0.1)
    weight = a.layer3.shortcut[0].weight
    assert torch.equal(weight, b.layer3.shortcut[0].weight)
    assert 0.05 < weight.std().item() < 0.15
    assert not torch.equal(weight, resnet.layer3.shortcut[0].weight)
    assert torch.equal(a.layer3.shortcut[1].running_var, resnet.layer3.shortcut[1].running_var)
    assert torch.equal(a.fc.weight, resnet.fc.weight)  # other stages untouched


def test_sanity_checks_never_touch_the_callers_model(resnet):
    before = copy.deepcopy(resnet.state_dict())
    images = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    result = sanity_checks(
        resnet,
        images,
        ["gradient", "guided_backprop"],
        SanityConfig(depth=1, measures=("spearman_abs",)),
        device="cpu",
        progress=False,
    )
    assert all(torch.equal(before[k], v) for k, v in resnet.state_dict().items())
    assert hook_count(resnet) == 0 and not resnet.training
    # cascading and independent agree at the first stage (same new weights), then part
    casc = result.curve("gradient", "spearman_abs", "cascading")[1]
    ind = result.curve("gradient", "spearman_abs", "independent")[1]
    assert casc[:2] == pytest.approx(ind[:2]) and casc[-1] != pytest.approx(ind[-1])
    assert set(result.examples["maps"]) >= {"original", "→ fc", "→ conv1"}
    assert result.examples["maps"]["original"].shape == (1, 2, 1, 28, 28)  # (k, M, C, H, W)
    # the figures: curves with each kind of band, and the maps as the layers are randomised
    for band in ("ci95", "sem", "std", "none"):
        fig = plot_curves(result, band=band)
        # (measure, variant) panels: spearman_abs for both variants, and cascading with the
        # maps that became constant left out
        assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
        if band == "ci95":
            assert "95% bootstrap interval" in fig.texts[0].get_text()
        plt.close(fig)
    with pytest.raises(ValueError, match="band"):
        plot_curves(result, band="iqr")
    fig = plot_sanity_maps(result)
    assert fig.axes[0].get_title() == "input" and "randomised" in fig.texts[0].get_text()
    plt.close(fig)


def test_sanity_and_pixel_arguments_are_checked(resnet):
    x = torch.zeros(2, 1, 28, 28)
    with pytest.raises(ValueError, match="variants"):
        SanityConfig(variants=("shuffled",))
    with pytest.raises(ValueError, match="measures"):
        SanityConfig(measures=("pearson",))
    with pytest.raises(ValueError, match="unknown attribution method 'gradient_x'"):
        sanity_checks(resnet, x, ["gradient_x"], device="cpu", progress=False)
    with pytest.raises(ValueError, match="between 0 and 1"):
        PixelPerturbationConfig(fractions=(0.0, 0.1))
    with pytest.raises(ValueError, match="replacement"):
        PixelPerturbationConfig(replacement="noise")
    with pytest.raises(ValueError, match="orders"):
        PixelPerturbationConfig(orders=("both",))
    with pytest.raises(ValueError, match="not run"):
        pixel_perturbation(
            resnet, x, ["gradient"], method_options={"prunegrad": {}}, device="cpu", progress=False
        )
    with pytest.raises(ValueError, match="non-empty"):
        pixel_perturbation(resnet, x[:0], ["gradient"], device="cpu", progress=False)
    with pytest.raises(ValueError, match="training mode"):
        pixel_perturbation(FashionResNet(width=2), x, ["gradient"], device="cpu", progress=False)
    with pytest.raises(ValueError, match="no CUDA GPU|unknown device"):
        if torch.cuda.is_available():
            raise ValueError("unknown device")
        pixel_perturbation(resnet, x, ["gradient"], device="cuda", progress=False)


def test_maps_are_computed_in_batches_for_the_predicted_class(resnet):
    x = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    whole = maps_for_images(resnet, x, "gradient", batch_size=64, progress=False)
    pieces = maps_for_images(resnet, x, "gradient", batch_size=3, progress=False)
    assert torch.allclose(whole, pieces, atol=1e-6)
    # the random control draws fresh values for every batch (a consumed generator)
    rand = maps_for_images(resnet, x[:4].repeat(2, 1, 1, 1), "random", batch_size=4, progress=False)
    assert not torch.equal(rand[:4], rand[4:])
    assert list(check_methods(["prunegrad", PerfectMap])) == ["prunegrad", "perfect"]


# ---- ROAR ---------------------------------------------------------------------------------------
FAST = TrainConfig(epochs=1, batch_size=64, lr=0.05, augment=False, num_classes=2)


def test_roar_cells_are_cached_and_an_interrupted_run_resumes(tmp_path, monkeypatch):
    train, test = patch_images(256, 1, seed=3), patch_images(64, 1, seed=4)
    config = RoarConfig(fractions=(0.2, 0.6), seeds=(0, 1), recipe=FAST, longer_reference=0)
    kwargs = dict(cache_dir=tmp_path, device="cpu", progress=False, model_fn=linear_model)
    model = PatchModel(1).eval()
    trained = []
    real_train = roar_cells.train_model

    def counting_train(*args, **kw):
        trained.append(kw["config"] if "config" in kw else args[2])
        return real_train(*args, **kw)

    monkeypatch.setattr(roar_cells, "train_model", counting_train)

    class Stop(Exception):
        pass

    def stop_after_three(record):
        if len(trained) == 3:
            raise Stop

    with pytest.raises(Stop):  # interrupted after 3 of the 2 + 2 * 2 * 2 = 10 cells
        roar(model, train, test, ["random", PerfectMap], config, on_cell=stop_after_three, **kwargs)
    assert len(list((tmp_path / "roar").rglob("*.json"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))
    trained.clear()
    first = roar(model, train, test, ["random", PerfectMap], config, **kwargs)
    assert len(trained) == 7  # only the missing cells were retrained
    assert [c.seed for c in trained] == [0, 0, 0, 1, 1, 1, 1]  # each cell with its own seed

    def no_maps(*args, **kw):
        raise AssertionError("maps are cached")

    monkeypatch.setattr(roar_inputs, "compute_maps", no_maps)
    trained.clear()
    again = roar(model, train, test, ["random", PerfectMap], config, **kwargs)
    assert trained == [] and again.scores == first.scores
    # another recipe is another set of cells
    other = RoarConfig(fractions=(0.2,), seeds=(0,), recipe=dataclasses.replace(FAST, epochs=2))
    assert recipe_hash(other.recipe) != recipe_hash(config.recipe)
    roar(model, train, test, [PerfectMap], other, **kwargs)
    assert len(trained) == 3  # reference, its 3x longer check and one cell
    assert [c.epochs for c in trained] == [2, 6, 2]


def test_mask_top_pixels_fills_every_channel_with_the_given_mean():
    x = torch.arange(2 * 3 * 2 * 2.0).view(2, 3, 2, 2)
    rank = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    out = mask_top_pixels(x, rank, 0.5, torch.tensor([-1.0, -2.0, -3.0]))
    assert out[0, :, 0, 0].tolist() == [-1.0, -2.0, -3.0] and out[0, :, 0, 1].tolist() == [
        -1,
        -2,
        -3,
    ]
    assert out[1, :, 1, 1].tolist() == [-1.0, -2.0, -3.0] and out[1, 0, 0, 0] == x[1, 0, 0, 0]
    assert (out == -1.0).sum() == 4  # 2 pixels x 2 images in channel 0


def test_roar_arguments_are_checked():
    with pytest.raises(ValueError, match="between 0 and 1"):
        RoarConfig(fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="seed"):
        RoarConfig(seeds=())
    with pytest.raises(ValueError, match="TrainConfig"):
        RoarConfig(recipe={"epochs": 1})
    with pytest.raises(ValueError, match="images"):
        roar(
            PatchModel(1).eval(),
            (torch.zeros(4, 8, 8), torch.zeros(4)),
            patch_images(4, 1, 0),
            ["random"],
            progress=False,
        )


def test_sanity_steps_are_cached_and_a_killed_run_resumes(resnet, tmp_path, monkeypatch):
    """A run killed in the middle redoes only the unfinished steps and gives the same result
    as an uncached run; a second run computes no map at all."""
    sanity_module = importlib.import_module("prunegrad_lite.benchmarks.sanity")
    sanity_cells = importlib.import_module("prunegrad_lite.benchmarks.sanity_cells")
    images = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    config = SanityConfig(
        depth=1, measures=("spearman_abs", "ssim"), inits=("authors", "reset"), draws=2
    )
    kwargs = {"device": "cpu", "progress": False, "seed": 3}
    methods = ["gradient", "random"]
    reference = sanity_checks(resnet, images, methods, config, **kwargs)
    real = sanity_module.maps_for_images
    calls = {"n": 0}

    def dies_after(limit):
        def maps(*args, **kw):
            calls["n"] += 1
            if calls["n"] > limit:
                raise KeyboardInterrupt("killed")
            return real(*args, **kw)

        return maps

    def patch(maps) -> None:  # the original maps (sanity) and each step's (sanity_cells)
        monkeypatch.setattr(sanity_module, "maps_for_images", maps)
        monkeypatch.setattr(sanity_cells, "maps_for_images", maps)

    # 2 original maps, then 2 per step: killed in the 7th step of 40
    patch(dies_after(2 + 2 * 6 + 1))
    with pytest.raises(KeyboardInterrupt):
        sanity_checks(resnet, images, methods, config, cache_dir=tmp_path, **kwargs)
    stored = sorted((tmp_path / "sanity").rglob("*_s?.pt"))
    assert len(stored) == 6
    calls["n"] = 0
    patch(dies_after(10**6))
    resumed = sanity_checks(resnet, images, methods, config, cache_dir=tmp_path, **kwargs)
    assert calls["n"] == 2 + 2 * (40 - 6)  # the original maps and the 34 unfinished steps
    assert len(sorted((tmp_path / "sanity").rglob("*_s?.pt"))) == 40
    calls["n"] = 0
    again = sanity_checks(resnet, images, methods, config, cache_dir=tmp_path, **kwargs)
    assert calls["n"] == 2  # only the original maps
    for result in (resumed, again):
        assert result.scores == reference.scores
        assert result.units.keys() == reference.units.keys()
        for key, values in reference.units.items():
            torch.testing.assert_close(result.units[key], values, equal_nan=True)
        for col, maps in reference.examples["maps"].items():
            assert torch.equal(result.examples["maps"][col], maps)
    # fewer draws reuse the larger run's steps; another seed does not
    calls["n"] = 0
    fewer = dataclasses.replace(config, draws=1, inits=("authors",))
    sanity_checks(resnet, images, methods, fewer, cache_dir=tmp_path, **kwargs)
    assert calls["n"] == 2
    sanity_checks(resnet, images, methods, fewer, cache_dir=tmp_path, **{**kwargs, "seed": 4})
    assert calls["n"] == 2 + 2 + 2 * 10
