"""The noisy linear imputation (Rong et al. 2022) and the replacements of pixel perturbation,
on known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunegrad_lite.benchmarks.imputation import NEIGHBOUR_WEIGHTS, noisy_linear_impute
from prunegrad_lite.benchmarks.removal import (
    REPLACEMENTS,
    mean_abs_change,
    remove_pixels,
    replace_pixels,
    replacement_images,
)


def ramp(n: int = 3, c: int = 2, h: int = 12, w: int = 10) -> torch.Tensor:
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    planes = [0.3 * yy - 0.2 * xx + 1.0, -0.5 * yy + 0.1 * xx]
    return torch.stack([planes[k % 2] + k for k in range(c)])[None].repeat(n, 1, 1, 1)


def interior_mask(n: int, h: int, w: int, p: float, seed: int) -> torch.Tensor:
    mask = torch.rand(n, h, w, generator=torch.Generator().manual_seed(seed)) < p
    mask[:, [0, -1]] = False
    mask[:, :, [0, -1]] = False
    return mask


def test_weights_are_rongs():
    assert sorted(NEIGHBOUR_WEIGHTS.values()) == [1 / 12] * 4 + [1 / 6] * 4
    assert sum(NEIGHBOUR_WEIGHTS.values()) == pytest.approx(1.0)


def test_a_linear_ramp_is_reconstructed_exactly_without_noise():
    x = ramp()
    removed = interior_mask(3, 12, 10, 0.7, seed=0)  # big connected removed regions
    out = noisy_linear_impute(x, removed, noise_std=0.0)
    assert out.dtype == x.dtype and out.shape == x.shape
    torch.testing.assert_close(out, x, rtol=0, atol=1e-10)


def test_a_constant_image_stays_constant_even_with_the_border_removed():
    x = torch.full((2, 3, 9, 9), 0.7)
    removed = torch.zeros(2, 9, 9, dtype=torch.bool)
    removed[0, :3] = True  # the whole top border band
    removed[1, :, :] = True
    removed[1, 4, 4] = False  # everything but one pixel: still solvable
    out = noisy_linear_impute(x, removed, noise_std=0.0)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


def test_kept_pixels_never_change_and_noise_touches_only_removed_pixels():
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    removed = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2)) < 0.4
    before = x.clone()
    gen = torch.Generator().manual_seed(5)
    out = noisy_linear_impute(x, removed, noise_std=0.05, generator=gen)
    keep = ~removed.expand_as(x)
    assert torch.equal(out[keep], x[keep]) and torch.equal(x, before)
    plain = noisy_linear_impute(x, removed, noise_std=0.0)
    noise = (out - plain)[~keep]
    assert 0.02 < float(noise.std()) < 0.08  # the requested noise, on removed pixels only
    again = noisy_linear_impute(
        x, removed, noise_std=0.05, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(out, again)  # seeded


def test_the_solution_is_the_weighted_mean_of_the_neighbours():
    """Every removed pixel equals the weight-normalised mean of its in-image neighbours
    (removed ones at their imputed values): the system, checked pixel by pixel in NumPy."""
    x = torch.randn(2, 1, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    removed = torch.rand(2, 7, 6, generator=torch.Generator().manual_seed(4)) < 0.5
    out = noisy_linear_impute(x, removed, noise_std=0.0).numpy()
    for i, y, xx in zip(*np.nonzero(removed.numpy())):
        total = weight = 0.0
        for (dy, dx), w in NEIGHBOUR_WEIGHTS.items():
            if 0 <= y + dy < 7 and 0 <= xx + dx < 6:
                total += w * out[i, 0, y + dy, xx + dx]
                weight += w
        assert out[i, 0, y, xx] == pytest.approx(total / weight, abs=1e-10)


def test_a_fully_removed_image_gets_the_mean_colour_and_bad_input_is_explained():
    x = torch.randn(2, 1, 5, 5)
    removed = torch.zeros(2, 5, 5, dtype=torch.bool)
    removed[0] = True
    out = noisy_linear_impute(x, removed, noise_std=0.0)
    assert torch.equal(out[0], torch.zeros(1, 5, 5)) and torch.equal(out[1], x[1])
    with pytest.raises(ValueError, match="bool"):
        noisy_linear_impute(x, removed.float())
    with pytest.raises(ValueError, match="does not match"):
        noisy_linear_impute(x, removed[:, :4])
    with pytest.raises(ValueError, match="noise_std"):
        noisy_linear_impute(x, removed, noise_std=-1.0)


def test_replace_pixels_covers_every_replacement_and_reports_the_change():
    x = ramp(n=2, c=1, h=8, w=8).float()
    masks = torch.zeros(3, 2, 8, 8, dtype=torch.bool)
    masks[:, :, 3:5, 3:5] = True
    masks[2, :, 2:6, 2:6] = True
    assert "noisy_linear" in REPLACEMENTS
    for how in REPLACEMENTS:
        kw = {"mean": (0.5,), "std": (0.5,)} if how == "black" else {}
        out = replace_pixels(x, masks, how, noise_std=0.0, **kw)
        assert out.shape == (3, 2, 1, 8, 8)
        keep = ~masks.unsqueeze(2).expand_as(out)
        assert torch.equal(out[keep], x.expand_as(out)[keep])
    filled = replace_pixels(x, masks, "noisy_linear", noise_std=0.0)
    torch.testing.assert_close(filled, x.expand_as(filled), rtol=0, atol=1e-5)  # a ramp
    assert float(mean_abs_change(x, filled, masks).abs().max()) < 1e-5
    zeroed = remove_pixels(x, masks, torch.zeros_like(x))
    delta = mean_abs_change(x, zeroed, masks)  # (3, 2): mean |x| of the removed pixels
    expected = x[0, 0, 3:5, 3:5].abs().mean().double()
    assert delta.shape == (3, 2) and float(delta[0, 0]) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="replace_pixels"):
        replacement_images(x, "noisy_linear")
