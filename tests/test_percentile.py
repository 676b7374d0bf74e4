"""The exact percentile threshold: every branch against numpy's linear percentile, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunegrad_lite.attribution import percentile
from prunegrad_lite.attribution.percentile import _pair_of_rows, kth_pair, percentile_threshold

QS = (0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 0.93, 0.95, 0.99, 0.999, 1.0 - 1e-9)


def numpy_percentile(values: torch.Tensor, q: float) -> np.ndarray:
    return np.percentile(values.double().numpy(), 100 * q, axis=1)  # method="linear"


def scores_like(n: int, m: int, seed: int) -> torch.Tensor:
    """Non-negative scores with about half exactly 0, like |a dS/da| of a ReLU network."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(n, m, generator=gen) ** 4
    values[torch.rand(n, m, generator=gen) < 0.5] = 0.0
    return values


@pytest.fixture
def spy(monkeypatch):
    """Records what every call of the bracketed branch returned."""
    calls = []
    original = percentile._bracketed

    def recorded(*args):
        calls.append(original(*args))
        return calls[-1]

    monkeypatch.setattr(percentile, "_bracketed", recorded)
    return calls


@pytest.fixture(params=["float32", "float64"])
def bracketed_dtype(request, monkeypatch):
    """Where the bracketed branch runs on the CPU: float32 where NumPy's sort is not faster
    (else the clamped sort takes the rows), and float64, which NumPy does not sort here."""
    if request.param == "float32":
        monkeypatch.setattr(percentile, "_NUMPY_SORT", False)
    return getattr(torch, request.param)


@pytest.fixture(params=["numpy_sort", "topk"])
def selection(request, monkeypatch):
    """Both ways of selecting within a short row: NumPy's row sort and torch's ``topk``."""
    monkeypatch.setattr(percentile, "_NUMPY_SORT", request.param == "numpy_sort")
    return request.param


@pytest.mark.parametrize("q", QS)
def test_direct_branch_equals_numpy_with_ties_zero_rows_and_constant_rows(q, spy, selection):
    gen = torch.Generator().manual_seed(0)
    values = torch.rand(7, 1001, generator=gen)
    values[:, :300] = 0.0  # ties at zero, like dead neurons
    values[2] = torch.randint(0, 5, (1001,), generator=gen).float()  # heavy ties
    values[3] = 0.0  # an all-zero row
    values[4] = 0.25  # a row of one value
    values[5] = -values[5]  # negative values
    values[6] = values[6].round(decimals=1) * 1e30  # ties among large values
    got = percentile_threshold(values, q).numpy()
    np.testing.assert_array_equal(got, numpy_percentile(values, q))
    assert spy == []  # short rows never take the bracketed branch


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_tiny_rows(m, selection):
    gen = torch.Generator().manual_seed(m)
    values = torch.randint(0, 3, (6, m), generator=gen).float()  # ties in tiny rows too
    for q in QS:
        np.testing.assert_array_equal(
            percentile_threshold(values, q).numpy(), numpy_percentile(values, q)
        )


def test_numpy_interpolation_is_reproduced_bit_for_bit():
    """numpy's _lerp computes b - (b - a)(1 - g) for g >= 0.5 and a + (b - a) g below."""
    gen = torch.Generator().manual_seed(3)
    values = torch.randn(50, 97, generator=gen, dtype=torch.float64) * 1e3
    for q in np.linspace(0.0, 1.0, 201):
        np.testing.assert_array_equal(
            percentile_threshold(values, float(q)).numpy(), numpy_percentile(values, float(q))
        )


def test_pieces_of_rows_equal_the_concatenated_rows_and_other_dtypes(selection):
    values = scores_like(4, 5000, seed=1)
    parts = [p.reshape(4, -1, 10) for p in values.split([1000, 3990, 10], dim=1)]  # any shape
    for q in (0.3, 0.93):
        want = numpy_percentile(values, q)
        np.testing.assert_array_equal(percentile_threshold(parts, q).numpy(), want)
        np.testing.assert_array_equal(percentile_threshold(values.double(), q).numpy(), want)
    ints = torch.randint(-5, 5, (3, 101), generator=torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(
        percentile_threshold(ints, 0.4).numpy(), numpy_percentile(ints, 0.4)
    )


def test_pair_of_rows_selects_on_either_side_with_ties(selection):
    gen = torch.Generator().manual_seed(4)
    mat = torch.randint(0, 20, (5, 200), generator=gen).float()
    ordered = mat.sort(dim=1).values
    for j in (0, 1, 50, 99, 100, 150, 198, 199):  # j < 100: bottom side, j >= 100: top side
        lo, hi = _pair_of_rows(mat, j)
        torch.testing.assert_close(lo, ordered[:, j], rtol=0, atol=0)
        torch.testing.assert_close(hi, ordered[:, min(j + 1, 199)], rtol=0, atol=0)


@pytest.mark.parametrize("q", [0.05, 0.3, 0.6, 0.9, 0.93, 0.99])
def test_bracketed_branch_equals_numpy(q, spy, monkeypatch, bracketed_dtype):
    monkeypatch.setattr(percentile, "DIRECT_MAX", 1000)
    values = scores_like(5, 40_000, seed=5)
    if q < 0.5:  # below the run of zeros: a bracket (0, 0] is empty, see the fallback test
        values = values + torch.rand(5, 40_000, generator=torch.Generator().manual_seed(9))
    values[4, ::3] = values[4, ::3].round(decimals=2)  # ties inside the bracket
    values = values.to(bracketed_dtype)
    parts = list(values.split([1000, 14_000, 25_000], dim=1))
    np.testing.assert_array_equal(
        percentile_threshold(parts, q).numpy(), numpy_percentile(values, q)
    )
    assert len(spy) == 1 and spy[0] is not None and bool(spy[0][2].all())  # no row fell back


def test_fallback_for_rows_whose_bracket_misses(spy, monkeypatch, bracketed_dtype):
    """A row whose ranks sit in a long run of ties, and one the sample misleads: direct branch."""
    monkeypatch.setattr(percentile, "DIRECT_MAX", 1000)
    values = scores_like(4, 30_000, seed=6)
    values[1, :9000] = 0.5  # rank 0.93 M sits in 30% of ties at 0.5: the bracket's ends tie
    values[1, 9000:] = torch.linspace(0, 0.4, 21_000)
    cols = torch.randint(
        0, 30_000, (percentile.SAMPLE_SIZE,), generator=torch.Generator().manual_seed(0)
    )
    values[2] = 0.0
    values[2, cols] = 1.0  # the sample (same seeded columns) sees only 1.0, 76% of the row is 0
    values = values.to(bracketed_dtype)
    np.testing.assert_array_equal(
        percentile_threshold(values, 0.93).numpy(), numpy_percentile(values, 0.93)
    )
    assert len(spy) == 1 and spy[0][2].tolist() == [True, False, False, True]


def test_no_row_can_use_its_bracket(spy, monkeypatch):
    monkeypatch.setattr(percentile, "DIRECT_MAX", 1000)
    monkeypatch.setattr(percentile, "_NUMPY_SORT", False)  # else the clamped sort takes them
    values = torch.zeros(3, 20_000)
    values[:, -5:] = 1.0  # all-zero but for 5 values: the bracket (0, 0] is empty
    np.testing.assert_array_equal(
        percentile_threshold(values, 0.9).numpy(), numpy_percentile(values, 0.9)
    )
    values = torch.full((2, 20_000), 7.0)  # rows of one value
    np.testing.assert_array_equal(
        percentile_threshold(values, 0.6).numpy(), numpy_percentile(values, 0.6)
    )
    assert spy == [None, None]


def test_huge_rows_take_the_bracketed_branch(spy, monkeypatch):
    monkeypatch.setattr(percentile, "_NUMPY_SORT", False)  # else the clamped sort takes them
    values = scores_like(2, 3 * percentile.DIRECT_MAX + 7, seed=7)
    parts = list(values.split(100_000, dim=1))
    for q in (0.7, 0.9):
        np.testing.assert_array_equal(
            percentile_threshold(parts, q).numpy(), numpy_percentile(values, q)
        )
    assert len(spy) == 2 and all(c is not None and bool(c[2].all()) for c in spy)


def test_numpy_sort_route_leaves_the_callers_rows_alone(monkeypatch):
    """The sort runs in a copy of the caller's rows (strided ones too), in place only on ours."""
    monkeypatch.setattr(percentile, "_NUMPY_SORT", True)
    values = scores_like(6, 3000, seed=11)
    strided = scores_like(3000, 6, seed=12).t()  # (6, 3000), not contiguous
    for rows in (values, strided, values[:, 1000:]):
        before = rows.clone()
        assert percentile._numpy_sorts([rows])
        np.testing.assert_array_equal(
            percentile_threshold(rows, 0.93).numpy(), numpy_percentile(before, 0.93)
        )
        assert torch.equal(rows, before)
    parts = list(values.split([1000, 2000], dim=1))  # concatenated by the module: sorted there
    np.testing.assert_array_equal(
        percentile_threshold(parts, 0.5).numpy(), numpy_percentile(values, 0.5)
    )
    assert torch.equal(torch.cat(parts, dim=1), values)
    # not taken: another dtype (of any piece), rows that require grad
    assert not percentile._numpy_sorts([values.double()])
    assert not percentile._numpy_sorts([values, values.double()])
    assert not percentile._numpy_sorts([values.clone().requires_grad_()])


def test_kth_pair_returns_both_order_statistics(selection):
    values = scores_like(3, 777, seed=8)
    ordered = values.sort(dim=1).values
    for r in (0, 400, 775, 776):
        lo, hi = kth_pair(values, r)
        torch.testing.assert_close(lo, ordered[:, r], rtol=0, atol=0)
        torch.testing.assert_close(hi, ordered[:, min(r + 1, 776)], rtol=0, atol=0)
    with pytest.raises(ValueError, match="rank"):
        kth_pair(values, 777)


def test_bad_input_gets_a_clear_error():
    values = torch.rand(3, 50)
    values[1, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        percentile_threshold(values, 0.9)
    with pytest.raises(ValueError, match="empty"):
        percentile_threshold(torch.empty(3, 0), 0.9)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        percentile_threshold(torch.rand(3, 5), 1.5)
    with pytest.raises(ValueError, match="pieces"):
        percentile_threshold([torch.rand(3, 5), torch.rand(4, 5)], 0.5)
    assert percentile_threshold(torch.empty(0, 5), 0.5).shape == (0,)


@pytest.mark.parametrize("m", [0, 1, 254, 255, 256, 513, 70_000])
def test_row_counts_equal_a_plain_sum(m):
    gen = torch.Generator().manual_seed(m)
    mask = torch.rand(3, m, generator=gen) < 0.7
    mask[1] = True  # a full row: 255 trues per chunk, the most a uint8 holds
    counts = percentile._row_counts(mask)
    assert counts.dtype == torch.int64
    torch.testing.assert_close(counts, mask.long().sum(1), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_select_equals_masked_select_row_major(dtype):
    """NumPy's compress (CPU) and masked_select (bfloat16, other devices) give the same values."""
    values = scores_like(5, 3000, seed=14).to(dtype)
    mask = torch.rand(5, 3000, generator=torch.Generator().manual_seed(15)) < 0.1
    for v, m in ((values, mask), (values[:, ::2], mask[:, ::2])):  # strided pieces too
        got = percentile._select(v, m)
        assert got.dtype == dtype
        assert torch.equal(got, v.masked_select(m))


def test_the_faster_way_is_measured_once_per_process(monkeypatch):
    monkeypatch.setattr(percentile, "_NUMPY_SORT", None)
    first = percentile._numpy_sort_is_faster()
    assert isinstance(first, bool) and percentile._NUMPY_SORT is first
    monkeypatch.setattr(percentile.np, "sort", None)  # not measured again
    assert percentile._numpy_sort_is_faster() is first
    values = scores_like(4, 2000, seed=16)
    monkeypatch.setattr(percentile, "_NUMPY_SORT", False)  # a machine where topk is faster
    assert not percentile._numpy_sorts([values])


@pytest.fixture
def clamp_spy(monkeypatch):
    """Records every call of the clamped sort: (row width, rows, whether a floor was sampled)."""
    calls = []
    original = percentile._clamped

    def recorded(parts, m, r, low=None):
        calls.append((m, parts[0].shape[0], low is None))
        return original(parts, m, r, low)

    monkeypatch.setattr(percentile, "_clamped", recorded)
    monkeypatch.setattr(percentile, "_NUMPY_SORT", True)
    return calls


@pytest.mark.parametrize("q", QS)
def test_clamped_sort_equals_numpy_with_ties_infinities_and_odd_rows(q, clamp_spy):
    m = percentile.CLAMP_MIN + 101
    values = scores_like(8, m, seed=21)
    gen = torch.Generator().manual_seed(22)
    values[1] = torch.randint(0, 5, (m,), generator=gen).float()  # heavy ties
    values[2] = 0.0  # an all-zero row
    values[3] = -0.25  # a row of one negative value
    values[4] = torch.randn(m, generator=gen)  # negative values
    values[5] = values[5] - 0.5
    values[6] = values[6].round(decimals=2) * 1e30  # ties among large values
    parts = [p.reshape(8, -1, 1) for p in values.split([101, m - 1101, 1000], dim=1)]
    before = [p.clone() for p in parts]
    got = percentile_threshold(parts, q).numpy()
    np.testing.assert_array_equal(got, numpy_percentile(values, q))
    assert clamp_spy == [(m, 8, True)]  # the clamped sort took these rows, no row misled
    assert all(torch.equal(p, b) for p, b in zip(parts, before))  # the caller's rows untouched
    # infinities at both ends (numpy's percentile gives NaN from inf - inf): order statistics
    values[:, ::7] = float("inf")
    values[:, 3::7] = -float("inf")
    ordered = values.sort(dim=1).values
    r = min(int(q * (m - 1)), m - 2)
    lo, hi = kth_pair(values, r)
    assert torch.equal(lo, ordered[:, r]) and torch.equal(hi, ordered[:, r + 1])


def test_clamped_sort_sorts_whole_the_rows_its_sample_misleads(clamp_spy):
    """Rows whose sampled columns hold their largest values: the floor lands above rank r, the
    row is found out (a raised value at rank r) and sorted whole; the other rows are not."""
    m = percentile.CLAMP_MIN * 2
    values = scores_like(4, m, seed=23)
    cols = percentile._sample(
        [torch.arange(m, dtype=torch.float32).view(1, -1)], m, percentile.CLAMP_SAMPLE
    )[0].long()  # the columns the sample reads
    values[1, cols] = 10.0 + torch.arange(cols.numel(), dtype=torch.float32)  # misleading
    values[3, cols] = 5.0
    for q in (0.5, 0.93):
        clamp_spy.clear()
        np.testing.assert_array_equal(
            percentile_threshold(values, q).numpy(), numpy_percentile(values, q)
        )
        assert clamp_spy == [(m, 4, True), (m, 2, False)]  # rows 1 and 3 again, no floor
    clamp_spy.clear()
    kth_pair(values[[0, 2]], m // 2)
    assert clamp_spy == [(m, 2, True)]  # no row misled: nothing sorted again


def test_clamped_sort_raises_on_nan_without_a_separate_pass(clamp_spy, monkeypatch):
    values = scores_like(3, percentile.CLAMP_MIN, seed=24)
    values[2, 5] = float("nan")
    monkeypatch.setattr(torch.Tensor, "sum", None)  # the NaN guard by a sum is not needed here
    with pytest.raises(ValueError, match="NaN"):
        percentile_threshold(values, 0.93)
    assert clamp_spy == [(percentile.CLAMP_MIN, 3, True)]


def test_clamped_sort_only_where_numpy_sorts(selection, clamp_spy, monkeypatch):
    monkeypatch.setattr(percentile, "_NUMPY_SORT", selection == "numpy_sort")
    values = scores_like(3, percentile.CLAMP_MIN, seed=25)
    np.testing.assert_array_equal(
        percentile_threshold(values, 0.9).numpy(), numpy_percentile(values, 0.9)
    )
    want = [(percentile.CLAMP_MIN, 3, True)] if selection == "numpy_sort" else []
    assert clamp_spy == want
    short = values[:, : percentile.CLAMP_MIN - 1]  # shorter rows are sorted whole
    clamp_spy.clear()
    percentile_threshold(short, 0.9)
    assert clamp_spy == []
    assert not percentile._clamps([values.double()], percentile.CLAMP_MIN)


@pytest.mark.parametrize("chunk", [1, 2 * percentile.CLAMP_MIN + 1, 1 << 30])
def test_clamped_sort_in_chunks_of_rows_and_on_long_rows(chunk, clamp_spy, spy, monkeypatch):
    """Rows copied one, two or all at a time give the same order statistics; rows longer than
    DIRECT_MAX take the clamped sort where NumPy sorts (not the bracketed branch); NaN in the
    last chunk still raises."""
    monkeypatch.setattr(percentile, "CLAMP_CHUNK", chunk)
    m = percentile.CLAMP_MIN
    values = scores_like(5, m, seed=26)
    values[3] = torch.linspace(-1, 1, m)
    for q in (0.1, 0.93):
        np.testing.assert_array_equal(
            percentile_threshold(values, q).numpy(), numpy_percentile(values, q)
        )
    bad = values.clone()
    bad[4, 17] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        percentile_threshold(bad, 0.5)
    monkeypatch.setattr(percentile, "DIRECT_MAX", m // 2)  # these rows are now long ones
    np.testing.assert_array_equal(
        percentile_threshold(values, 0.7).numpy(), numpy_percentile(values, 0.7)
    )
    assert spy == [] and len(clamp_spy) == 4
