"""The benchmarks' building blocks against oracles: SciPy, scikit-image, numpy, hand-made cases."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import scipy.stats
import torch
from skimage.feature import hog
from skimage.metrics import structural_similarity

from prunegrad_lite.benchmarks.pixel_perturbation import probability_change
from prunegrad_lite.benchmarks.removal import (
    check_fractions,
    num_removed,
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
from prunegrad_lite.benchmarks.similarity import (
    constant_maps,
    hog_correlation,
    map_similarities,
    pearson,
    spearman,
    ssim,
)


@pytest.fixture
def fixed_maps() -> tuple[np.ndarray, np.ndarray]:
    """Two batches of 12x12 maps with ties (rounded values) and one constant map."""
    rng = np.random.default_rng(3)
    a = np.round(rng.normal(size=(5, 12, 12)), 1)
    b = np.round(0.6 * a + rng.normal(size=(5, 12, 12)), 1)
    b[4] = 0.25  # constant: Spearman is undefined
    return a, b


# ---- similarity ---------------------------------------------------------------------------------
def test_spearman_equals_scipy_with_ties_and_nan_for_a_constant_map(fixed_maps):
    a, b = fixed_maps
    ours = spearman(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    for n in range(4):
        expected = scipy.stats.spearmanr(a[n].ravel(), b[n].ravel()).statistic
        assert ours[n] == pytest.approx(expected, abs=1e-12)
    assert math.isnan(ours[4])
    assert spearman(a, a)[:4].numpy() == pytest.approx(np.ones(4))


def test_pearson_equals_numpy(fixed_maps):
    a, b = fixed_maps
    ours = pearson(a[:4], b[:4]).numpy()
    expected = [np.corrcoef(a[n].ravel(), b[n].ravel())[0, 1] for n in range(4)]
    assert ours == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("win_size", [3, 5, 7])
def test_ssim_equals_scikit_image(fixed_maps, win_size):
    a, b = fixed_maps
    a01 = np.abs(a) / np.abs(a).max(axis=(1, 2), keepdims=True)
    b01 = np.abs(b) / np.abs(b).max(axis=(1, 2), keepdims=True)
    ours = ssim(torch.from_numpy(a01), torch.from_numpy(b01), win_size=win_size).numpy()
    for n in range(5):
        expected = structural_similarity(a01[n], b01[n], win_size=win_size, data_range=1.0)
        assert ours[n] == pytest.approx(expected, abs=1e-10)
    assert ssim(a01, a01).numpy() == pytest.approx(np.ones(5))


def test_hog_correlation_equals_direct_scikit_image_calls(fixed_maps):
    a, b = fixed_maps
    a01, b01 = np.abs(a[:3]) / 3, np.abs(b[:3]) / 3
    ours = hog_correlation(a01, b01).numpy()
    for n in range(3):
        ha = hog(a01[n], orientations=9, pixels_per_cell=(2, 2), cells_per_block=(2, 2))
        hb = hog(b01[n], orientations=9, pixels_per_cell=(2, 2), cells_per_block=(2, 2))
        assert ours[n] == pytest.approx(np.corrcoef(ha, hb)[0, 1], abs=1e-10)


def test_map_similarities_use_magnitude_signed_and_normalised_maps():
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 2, 10, 10, generator=gen)
    flipped = -3.0 * maps  # same magnitudes (scaled), opposite signs
    sims = map_similarities(maps, flipped, ("spearman_abs", "spearman", "ssim", "hog"))
    assert sims["spearman_abs"].numpy() == pytest.approx(np.ones(3))
    assert sims["spearman"].numpy() == pytest.approx(-np.ones(3))
    assert sims["ssim"].numpy() == pytest.approx(np.ones(3))  # |map| / max is scale-free
    assert sims["hog"].numpy() == pytest.approx(np.ones(3))
    # a map that became constant: NaN (SciPy's convention) unless a value is given for it;
    # SSIM is defined for it and never replaced; an original that is constant stays NaN
    zero = maps.clone()
    zero[1] = 0.0
    kept = map_similarities(maps, zero, ("spearman_abs", "spearman", "ssim", "hog"))
    given = map_similarities(maps, zero, ("spearman_abs", "spearman", "ssim", "hog"), 0.0)
    for measure in ("spearman_abs", "spearman", "hog"):
        assert np.isnan(kept[measure][1].item()) and given[measure][1].item() == 0.0
        assert given[measure][[0, 2]].numpy() == pytest.approx(np.ones(2))
    assert given["ssim"].numpy() == pytest.approx(kept["ssim"].numpy())
    assert np.isnan(map_similarities(zero, zero, ("spearman_abs",), 0.0)["spearman_abs"][1].item())
    assert constant_maps(zero).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="unknown similarity"):
        map_similarities(maps, maps, ("pearson",))
    with pytest.raises(ValueError, match="N, C, H, W"):
        map_similarities(maps, maps[:, 0])


# ---- aggregation and areas ----------------------------------------------------------------------
def test_mean_std_skips_nan_and_uses_the_sample_std():
    values = torch.tensor([[1.0, 2.0], [3.0, float("nan")], [5.0, float("nan")]])
    mean, std, n = mean_std(values, dim=0)
    assert mean.tolist() == [3.0, 2.0] and n.tolist() == [3, 1]
    assert std[0].item() == pytest.approx(np.std([1, 3, 5], ddof=1)) and std[1].item() == 0.0
    assert math.isnan(mean_std(torch.tensor([float("nan")]))[0].item())


def test_area_under_curve_is_the_normalised_trapezoid():
    x = [0.1, 0.3, 0.5, 0.7, 0.9]
    y = torch.tensor([[0.74, 0.68, 0.65, 0.58, 0.44], [1.0, 1.0, 1.0, 1.0, 1.0]])
    auc = area_under_curve(x, y)
    assert auc[0].item() == pytest.approx(np.trapezoid(y[0].numpy(), x) / 0.8)
    assert auc[1].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="increasing"):
        area_under_curve([0.3, 0.1], torch.zeros(2))


def test_probability_change_is_absolute_and_relative():
    p = torch.tensor([0.8, 0.5])
    assert probability_change(p, torch.tensor([0.6, 0.75])).tolist() == pytest.approx([0.25, 0.5])


# ---- ranking and removal ------------------------------------------------------------------------
def test_rank_pixels_uses_max_abs_over_channels_and_breaks_ties_at_random():
    attr = torch.zeros(1, 2, 2, 2)
    attr[0, 1, 0, 1] = -5.0  # the most important pixel, in channel 1, negative
    attr[0, 0, 1, 0] = 2.0
    rank = rank_pixels(attr)
    assert rank[0, 1].item() == 0 and rank[0, 2].item() == 1
    # 400 copies of an all-tied map: every position is ranked first about equally often
    tied = torch.zeros(400, 1, 2, 2)
    firsts = (rank_pixels(tied, torch.Generator().manual_seed(1)) == 0).float().mean(0)
    assert firsts.min() > 0.15 and firsts.max() < 0.35
    assert torch.equal(rank_pixels(tied), rank_pixels(tied))  # seeded: reproducible
    with pytest.raises(ValueError, match="NaN"):
        rank_pixels(torch.full((1, 2, 2), float("nan")))


def test_removal_masks_lerf_and_morf_for_all_fractions_at_once():
    maps = torch.arange(100.0).view(1, 10, 10)  # pixel 99 most important, pixel 0 least
    rank = rank_pixels(maps)
    morf = removal_masks(rank, [0.01, 0.05, 0.5], "morf", (10, 10)).flatten(2)  # (F, N, P)
    lerf = removal_masks(rank, [0.01, 0.05, 0.5], "lerf", (10, 10)).flatten(2)
    assert morf.sum(-1).flatten().tolist() == [1, 5, 50] == lerf.sum(-1).flatten().tolist()
    assert morf[1, 0].nonzero().flatten().tolist() == [95, 96, 97, 98, 99]
    assert lerf[1, 0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="order"):
        removal_masks(rank, [0.1], "random", (10, 10))
    with pytest.raises(ValueError, match="between 0 and 1"):
        removal_masks(rank, [1.0], "morf", (10, 10))


def test_remove_pixels_replaces_all_channels_of_a_pixel():
    images = torch.ones(2, 3, 4, 4)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[1, 2, 3] = True
    out = remove_pixels(images, masks, torch.full_like(images, -7.0))
    assert out[1, :, 2, 3].tolist() == [-7.0, -7.0, -7.0]
    assert (out == -7.0).sum() == 3
    stacked = remove_pixels(images, torch.stack([masks, ~masks]), torch.zeros_like(images))
    assert stacked.shape == (2, 2, 3, 4, 4)


def test_replacement_values():
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(replacement_images(x, "mean"), torch.zeros_like(x))
    black = replacement_images(x, "black", mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.1))
    assert black[1, :, 5, 5].tolist() == pytest.approx([-2.5, -2.0, -3.0])
    blurred = replacement_images(x, "blur", blur_sigma=1.0)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    assert torch.allclose(
        replacement_images(torch.ones(1, 1, 8, 8), "blur"), torch.ones(1, 1, 8, 8)
    )
    assert torch.equal(replacement_images(x, 0.5), torch.full_like(x, 0.5))
    with pytest.raises(ValueError, match="replacement"):
        replacement_images(x, "noise")
    with pytest.raises(ValueError, match="mean and std"):
        replacement_images(x, "black")


def test_fractions_are_checked():
    assert check_fractions([0.3, 0.1, 0.3]) == (0.1, 0.3)
    assert num_removed(0.01, 784) == 8 and num_removed(0.001, 10) == 1
    for bad in ([0.0], [1.0], [-0.1], [], [1.5]):
        with pytest.raises(ValueError):
            check_fractions(bad)


# ---- the results format -------------------------------------------------------------------------
def test_results_round_trip_and_write_every_file(tmp_path):
    curves = [
        CurvePoint("gradient", "prob_change", "lerf", j, f, f"{f:g}", 0.1 * j, 0.01, 5)
        for j, f in enumerate([0.01, 0.02])
    ]
    scores = [
        Score("gradient", "lerf_auc", 0.05, 0.01, 5, "lower"),
        Score("gradient", "lerf@1%", float("nan"), 0.0, 0, "lower"),
    ]
    result = BenchmarkResult("pixel", "toy", ["gradient"], curves, scores, {"fractions": [0.01]})
    paths = result.save(tmp_path)
    assert {p.name for p in paths.values()} == {
        "pixel_toy_curves.csv",
        "pixel_toy_scores.csv",
        "pixel_toy.md",
        "pixel_toy.json",
        "pixel_toy.png",
    }
    again = BenchmarkResult.load(paths["json"])
    assert again.curves == result.curves and again.score("gradient", "lerf_auc") == scores[0]
    assert math.isnan(again.score("gradient", "lerf@1%").mean)
    table = paths["markdown"].read_text()
    assert "lerf_auc (↓)" in table and "n/a" in table and "0.050 ± 0.010" in table
    assert paths["curves"].read_text().splitlines()[0].startswith("benchmark,model,method,metric")
    x, mean, std, labels = result.curve("gradient", "prob_change", "lerf")
    assert x.tolist() == [0.01, 0.02] and mean.tolist() == pytest.approx([0.0, 0.1])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temporary file


def test_results_store_per_unit_values_and_old_files_still_load(tmp_path):
    curves = [CurvePoint("gradient", "prob_change", "lerf", 0, 0.01, "1%", 0.2, 0.1, 3)]
    scores = [Score("gradient", "lerf_auc", 0.05, 0.01, 3, "lower")]
    result = BenchmarkResult("pixel", "toy", ["gradient"], curves, scores, {})
    old_json = result.to_json()  # a file written before per-unit values existed
    assert "units" not in json.loads(old_json)
    assert BenchmarkResult.from_json(old_json).units == {}

    result.set_units(
        "gradient",
        "prob_change",
        "lerf",
        0,
        torch.tensor([0.1, float("nan"), 0.3], dtype=torch.float64),
    )
    result.set_units("gradient", "ssim", "cascading", 2, np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert result.unit_values("gradient", "ssim", "cascading", 2).shape == (2, 2)
    paths = result.save(tmp_path, figure=False)
    payload = json.loads(paths["json"].read_text())
    assert payload["units"]["gradient/prob_change/lerf/0"] == [[0.1, None, 0.3]]
    assert payload["units"]["gradient/ssim/cascading/2"] == [[1.0, 2.0], [3.0, 4.0]]
    again = BenchmarkResult.load(paths["json"])
    values = again.unit_values("gradient", "prob_change", "lerf", 0)
    assert values.shape == (1, 3) and values.dtype == np.float64
    assert values[0, 0] == 0.1 and math.isnan(values[0, 1]) and values[0, 2] == 0.3
    np.testing.assert_array_equal(
        again.unit_values("gradient", "ssim", "cascading", 2), [[1.0, 2.0], [3.0, 4.0]]
    )
    assert again.has_units("gradient", "ssim", "cascading", 2)
    assert not again.has_units("gradient", "ssim", "cascading", 3)
    with pytest.raises(KeyError, match="no per-unit values"):
        again.unit_values("prunegrad", "prob_change", "lerf", 0)
    rows = list(csv.DictReader(io.StringIO(paths["units"].read_text())))
    assert len(rows) == 3 + 4 and paths["units"].name == "pixel_toy_units.csv"
    assert rows[1]["value"] == "" and rows[2]["value"] == "0.3" and rows[2]["unit"] == "2"
    assert rows[-1] == {
        "benchmark": "pixel",
        "model": "toy",
        "method": "gradient",
        "metric": "ssim",
        "variant": "cascading",
        "step": "2",
        "seed": "1",
        "unit": "1",
        "value": "4.0",
    }
    with pytest.raises(ValueError, match="shape"):
        result.set_units("gradient", "x", "y", 0, np.zeros((2, 2, 2)))
