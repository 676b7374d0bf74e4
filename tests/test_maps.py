"""Channel reductions, per-sample normalisation and display images against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunegrad_lite.maps import clip_percentile, normalize_map, reduce_channels, to_display_image

# (N=2, C=3, H=2, W=2): pixel (0, 0) of sample 0 has channels (1, -4, 2): largest |.| is -4
A = np.array(
    [
        [[[1.0, 0.5], [0.0, -1.0]], [[-4.0, 0.2], [0.0, 3.0]], [[2.0, -0.7], [0.0, -3.0]]],
        [[[0.1, 0.2], [0.3, 0.4]], [[-0.5, 0.6], [-0.7, 0.8]], [[0.9, -1.0], [1.1, -1.2]]],
    ]
)


def test_reductions_against_numpy():
    a = torch.as_tensor(A)
    np.testing.assert_allclose(reduce_channels(a, "max_abs"), np.abs(A).max(axis=1))
    np.testing.assert_allclose(reduce_channels(a, "sum"), A.sum(axis=1))
    np.testing.assert_allclose(reduce_channels(a, "sum_abs"), np.abs(A).sum(axis=1))
    idx = np.abs(A).argmax(axis=1)[:, None]
    signed = np.take_along_axis(A, idx, axis=1)[:, 0]
    np.testing.assert_allclose(reduce_channels(a, "signed_max_abs"), signed)
    np.testing.assert_allclose(reduce_channels(A, "max_abs"), np.abs(A).max(axis=1))  # numpy in


def test_signed_reduction_keeps_signs():
    s = reduce_channels(torch.as_tensor(A), "signed_max_abs")  # (2, 2, 2)
    assert s[0, 0, 0] == -4.0 and s[0, 1, 1] == 3.0  # tie |3| = |-3|: the first channel wins
    assert s[1, 1, 1] == -1.2 and s[1, 0, 1] == -1.0
    assert torch.equal(s.abs(), reduce_channels(torch.as_tensor(A), "max_abs"))


def test_reduce_channels_rejects_bad_arguments():
    with pytest.raises(ValueError, match="must be one of"):
        reduce_channels(torch.as_tensor(A), "mean")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        reduce_channels(torch.as_tensor(A[0]))


def test_normalize_map_bounds():
    m = reduce_channels(torch.as_tensor(A), "signed_max_abs")
    n = normalize_map(m)
    assert torch.allclose(n.abs().flatten(1).amax(1), torch.ones(2, dtype=n.dtype))
    torch.testing.assert_close(n[0], m[0] / 4.0)
    assert torch.equal(torch.sign(n), torch.sign(m))
    zeros = normalize_map(torch.zeros(2, 3, 3))
    assert torch.equal(zeros, torch.zeros(2, 3, 3))  # an all-zero map stays zero (no NaN)
    big = torch.arange(1, 201, dtype=torch.float64).view(2, 10, 10)  # sample 1 is 101..200
    p = normalize_map(big, "percentile", q=50)
    assert p.min() >= 0 and p.max() == 1.0
    median = np.percentile(np.arange(1, 101), 50)  # 50.5, numpy's linear interpolation
    torch.testing.assert_close(p[0, 0, 0], torch.tensor(1 / median, dtype=torch.float64))
    with pytest.raises(ValueError, match="percentile"):
        normalize_map(big, "zscore")


def test_clip_percentile():
    m = torch.tensor([[-100.0, -1.0, 0.5, 1.0, 2.0]])
    p = np.percentile(np.abs(m.numpy()), 80)  # per sample over |m|
    clipped = clip_percentile(m, q=80)
    np.testing.assert_allclose(clipped, np.clip(m.numpy(), -p, p), rtol=1e-6)
    assert clipped[0, 0] == -p  # the outlier is capped with its sign
    with pytest.raises(ValueError, match="percentile"):
        clip_percentile(m, q=0)


def test_to_display_image_conventions():
    pixels = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = (pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    img = to_display_image(x, mean, std)
    assert img.shape == (2, 4, 5, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img, pixels.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    # EfficientNet style on 0..255 pixels: x = (p - 127) / 128
    raw = torch.tensor([[[0.0, 127.0, 255.0]]])  # (C=1, H=1, W=3), one image without batch
    out = to_display_image((raw - 127) / 128, mean=127, std=128, pixel_max=255)
    assert out.shape == (1, 3, 1)
    np.testing.assert_allclose(out[0, :, 0], [0.0, 127 / 255, 1.0], atol=1e-6)
    assert to_display_image(torch.full((1, 1, 2, 2), 5.0)).max() == 1.0  # clipped to [0, 1]
    with pytest.raises(ValueError, match="channels"):
        to_display_image(x, mean=(0.5, 0.5))
