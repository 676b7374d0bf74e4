"""Exact per-row percentiles: PruneGrad's pruning threshold, without a torch sort.

:func:`percentile_threshold` returns, for every row, exactly what
``numpy.percentile(row, 100 * q)`` (``method="linear"``) returns, ties included: the two order
statistics around the virtual index ``q * (M - 1)`` and numpy's interpolation between them.
The rows may come as several (N, m_i) pieces (one per activation site); the pieces are only
concatenated on the direct branch, where the rows are short, and copied a few rows at a time
on the clamped branch.

Four branches, each exact on its own:

* **clamped** (on the CPU, float32 rows of at least :data:`CLAMP_MIN` values, where NumPy's
  SIMD sort is faster than ``topk``; PruneGrad's rows on the CPU): a sample of each row gives
  a floor somewhat below the wanted rank; NumPy sorts a copy of the rows in which every value
  below the floor is raised to the float32 just below it, which moves no value at or above
  the floor and sorts several times faster; the two order statistics are read off. Long rows
  are copied a few rows at a time (:data:`CLAMP_CHUNK` values).
* **direct** (rows up to :data:`DIRECT_MAX` values, and every row the other branches hand
  back): ``topk`` of the smaller side of the wanted rank, then the two order statistics from
  that small result; one selection, no tie pass. On the CPU, float32 rows are instead
  sorted by NumPy and the two columns read off where that is faster than ``topk`` (NumPy 2's
  SIMD sort on x86, see :func:`_numpy_sorts`): as exact.
* **bracketed** (longer rows elsewhere, e.g. VGG16 on a GPU: 13.5M values per image): a
  sample of each row gives a bracket ``(low, high]`` that holds the wanted ranks with near
  certainty. Two comparison passes count the values above each end, only the values inside
  (a few percent of the row) are copied out, and the selection runs on them.
* **fallback**: a row whose bracket (or floor) misses the wanted ranks (a misleading sample,
  or the ranks inside a long run of tied values at an end of the bracket) or holds too many
  values is detected by its counts (by its value at the wanted rank) and is selected whole.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CLAMP_CHUNK",
    "CLAMP_MIN",
    "CLAMP_SAMPLE",
    "DIRECT_MAX",
    "SAMPLE_SIZE",
    "kth_pair",
    "percentile_threshold",
]

#: Rows of up to this many values take the direct branch (one ``topk`` over the whole row).
DIRECT_MAX = 1 << 17
#: Values per row in the sample that places the bracketed branch's bracket.
SAMPLE_SIZE = 8192
#: Values per row in the sample that places the floor of NumPy's clamped sort (:func:`_clamped`).
CLAMP_SAMPLE = 1024
#: Rows of at least this many values are sorted clamped; shorter rows are sorted whole.
CLAMP_MIN = 8 * CLAMP_SAMPLE
#: The clamped sort copies this many values at a time (at least one row).
CLAMP_CHUNK = 1 << 22
_NUMPY_SORT: bool | None = None  # NumPy's row sort is faster here: None until measured
_MAX_CANDIDATES = 0.25  # a row with this fraction of its values more than needed: direct


def _numpy_sort_is_faster() -> bool:
    """Whether NumPy sorts float32 rows faster than ``topk`` selects in them, on this machine.

    Measured once per process, on the first call (6.7 ms on a 2-core machine), on 8 rows of
    16,384 score-like values (half of them 0), best of three each. Both ways are exact; only
    the speed depends on the answer.
    """
    global _NUMPY_SORT
    if _NUMPY_SORT is None:
        gen = torch.Generator().manual_seed(0)
        rows = torch.rand(8, 1 << 14, generator=gen) ** 4
        rows[:, ::2] = 0.0
        k = rows.shape[1] // 10

        def best(fn) -> float:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return min(times)

        t_sort = best(lambda: np.sort(rows.numpy(), axis=1))
        t_topk = best(lambda: rows.topk(k, dim=1, sorted=False))
        _NUMPY_SORT = t_sort < t_topk
    return _NUMPY_SORT


def _numpy_sorts(parts: Sequence[Tensor]) -> bool:
    """Whether these rows (or pieces of rows) are sorted by NumPy instead of selected by ``topk``.

    On x86 CPUs NumPy 2 sorts float32 rows with SIMD (x86-simd-sort, AVX2 or AVX-512): on a
    2-core AVX-512 machine 64 rows of 56,448 scores in 10 ms on one thread, where ``topk``'s
    selection, which builds a (value, index) pair per element, takes 23 ms. So CPU float32
    pieces that do not require grad are sorted where :func:`_numpy_sort_is_faster` says so (no
    SIMD sort for this CPU or NumPy: ``topk`` stays); rows of at least :data:`CLAMP_MIN`
    values by :func:`_clamped`, shorter ones whole by :func:`_pair_of_rows`.
    """
    return (
        all(p.device.type == "cpu" and p.dtype == torch.float32 for p in parts)
        and not any(p.requires_grad for p in parts)
        and _numpy_sort_is_faster()
    )


def _nan_error() -> ValueError:
    return ValueError(
        "values contain NaN: the scores of a model whose outputs or gradients are NaN "
        "cannot be ranked; check the inputs and the model's weights"
    )


def _clamps(parts: Sequence[Tensor], m: int) -> bool:
    """Whether :func:`kth_pair` takes the clamped sort (:func:`_clamped`) for these rows."""
    return m >= CLAMP_MIN and _numpy_sorts(parts)


def _clamped(
    parts: Sequence[Tensor], m: int, r: int, low: np.ndarray | None = None
) -> tuple[Tensor, Tensor]:
    """Order statistics ``r`` and ``min(r + 1, M - 1)`` of each row, by NumPy's sort of a copy
    of the rows in which every value below a floor ``low`` is raised to the float32 just
    below ``low``.

    ``low`` (N,) is by default an order statistic of a sample of each row
    (:data:`CLAMP_SAMPLE` values) somewhat below rank ``r``. Raising moves no value
    ``>= low``, and the raised values still sort below them, so every order statistic at a
    position holding a value ``>= low`` is the row's own: exact whenever rank ``r`` holds
    one. A row whose rank ``r`` holds a raised value (the sample placed ``low`` too high) is
    found out and sorted again with no floor. Rows with most values raised to one value sort
    several times faster (score-like rows, half of them 0: 64 rows of 56,448 values, 88%
    raised, 4.0 ms against 11.2 ms; one row of 13.5M, 85% raised, 22 ms against 48 ms; one
    thread). NaN sorts last and raises.
    """
    n = parts[0].shape[0]
    r2 = min(r + 1, m - 1)
    if low is None:
        sample = _sample(parts, m, CLAMP_SAMPLE).numpy()  # (N, S), a new array
        sample.sort(axis=1)
        size = sample.shape[1]
        q = r / (m - 1)
        i_lo = math.floor(q * (size - 1) - _margin(size, q))
        low = sample[:, i_lo] if i_lo >= 0 else np.full(n, -np.inf, dtype=np.float32)
    floor = torch.from_numpy(np.nextafter(low, np.float32(-np.inf)).reshape(n, 1))  # just below
    v_r, v_r2 = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    step = max(1, CLAMP_CHUNK // m)
    rows = torch.empty((min(step, n), m), dtype=torch.float32)
    for i in range(0, n, step):  # a few rows at a time: the copy stays small
        k = min(step, n - i)
        chunk, offset = rows[:k], 0
        for p in parts:  # the copy raises the values below low: one pass, as a concatenation
            # (torch's maximum, on torch's threads: 0.8 ms against NumPy's 1.8 ms at 2 threads)
            torch.maximum(
                p[i : i + k], floor[i : i + k], out=chunk[:, offset : offset + p.shape[1]]
            )
            offset += p.shape[1]
        chunk = chunk.numpy()
        # one thread: right after torch's parallel ops its idle OpenMP workers still spin on the
        # other cores, and blocks sorted by Python threads measured slower (9.0 vs 8.0-8.4 ms for
        # the shipped model's threshold step at 2 threads)
        chunk.sort(axis=1)
        if np.isnan(chunk[:, -1]).any():
            raise _nan_error()
        v_r[i : i + k], v_r2[i : i + k] = chunk[:, r], chunk[:, r2]
    miss = v_r < low  # a raised value at rank r: the floor was above it
    if miss.any():
        idx = torch.from_numpy(np.flatnonzero(miss))
        again = [p.index_select(0, idx) for p in parts]
        d_r, d_r2 = _clamped(again, m, r, np.full(len(idx), -np.inf, dtype=np.float32))
        v_r[miss], v_r2[miss] = d_r.numpy(), d_r2.numpy()
    return torch.from_numpy(v_r), torch.from_numpy(v_r2)


def _pair_of_rows(mat: Tensor, j: int, owned: bool = False) -> tuple[Tensor, Tensor]:
    """Order statistics ``j`` and ``min(j + 1, C - 1)`` (0-based, ascending) of each row of (N, C).

    ``topk`` of the side of rank ``j`` with fewer values, then the two that border it: the
    values ``topk`` returns are a multiset, so ties need no separate pass. Where
    :func:`_numpy_sorts`, the rows are sorted instead (in place when ``owned``: a matrix
    this module made, never the caller's) and the two columns read off.
    """
    c = mat.shape[1]
    j2 = min(j + 1, c - 1)
    if _numpy_sorts([mat]):
        rows = mat.contiguous().numpy()  # a strided mat is copied here: the copy is ours
        if not owned and mat.is_contiguous():
            rows = rows.copy()  # the caller's memory
        rows.sort(axis=1)
        return torch.from_numpy(rows[:, j].copy()), torch.from_numpy(rows[:, j2].copy())
    if j2 + 1 <= c - j:  # ranks 0 .. j2 are the smaller side
        side = mat.topk(j2 + 1, dim=1, largest=False, sorted=False).values  # (N, j2 + 1)
        two = side.topk(min(2, j2 + 1), dim=1, largest=True, sorted=True).values
        return two[:, -1], two[:, 0]
    side = mat.topk(c - j, dim=1, largest=True, sorted=False).values  # (N, C - j): ranks j ..
    two = side.topk(min(2, c - j), dim=1, largest=False, sorted=True).values
    return two[:, 0], two[:, -1]


def _direct(parts: Sequence[Tensor], r: int) -> tuple[Tensor, Tensor]:
    if len(parts) == 1:
        return _pair_of_rows(parts[0], r)  # (N, M), the caller's: sorted in a copy
    return _pair_of_rows(torch.cat(list(parts), dim=1), r, owned=True)


def _row_counts(mask: Tensor) -> Tensor:
    """Number of True values in each row of an (N, m) bool tensor, as int64 (N,).

    Summing bools (or uint8 into a wider type) casts every element first, ~8x slower on CPU
    than summing uint8 into uint8; chunks of 255 cannot overflow, the chunk totals are few.
    """
    u = mask.view(torch.uint8)
    whole = u.shape[1] - u.shape[1] % 255
    chunks = u[:, :whole].unflatten(1, (whole // 255, 255)).sum(-1, dtype=torch.uint8)
    return chunks.sum(1, dtype=torch.int64) + u[:, whole:].sum(1, dtype=torch.int64)


def _select(values: Tensor, mask: Tensor) -> Tensor:
    """``values.masked_select(mask)`` for two (N, m) tensors: row-major, row 0's values first.

    On the CPU NumPy's ``compress`` does it ~5x faster (18 ms for 12.8M values, where
    ``masked_select`` takes 90-110 ms); bfloat16, which NumPy lacks, and other devices keep
    ``masked_select``.
    """
    if values.device.type != "cpu" or values.dtype == torch.bfloat16:
        return values.masked_select(mask)
    flat = values.detach().contiguous().numpy().ravel()
    return torch.from_numpy(np.compress(mask.contiguous().numpy().ravel(), flat))


def _margin(size: int, q: float) -> float:
    """How far (in sample ranks) a bracket's end lies from rank ``q (S - 1)`` of a sample of
    ``size``: four times the binomial spread of the sample rank, plus 16."""
    return 4.0 * math.sqrt(size * q * (1 - q)) + 16


def _sample(parts: Sequence[Tensor], m: int, size: int = SAMPLE_SIZE) -> Tensor:
    """``size`` columns of the rows, drawn at fixed pseudo-random positions (N, S).

    Random rather than strided: a stride can line up with a feature map's period and see
    one column only. The positions come from a fixed seed, so every call is the same.
    """
    columns = _sample_columns(tuple(p.shape[1] for p in parts), size)
    pieces = [p.index_select(1, c.to(p.device)) for p, c in zip(parts, columns) if c.numel()]
    return torch.cat(pieces, dim=1)


@functools.lru_cache(maxsize=64)
def _sample_columns(widths: tuple[int, ...], size: int) -> tuple[Tensor, ...]:
    """The sample's columns in each piece of ``widths`` values (the same for every call)."""
    gen = torch.Generator().manual_seed(0)
    cols = torch.randint(0, sum(widths), (size,), generator=gen).sort().values  # over cat(parts)
    columns, offset = [], 0
    for w in widths:
        columns.append(cols[(cols >= offset) & (cols < offset + w)] - offset)
        offset += w
    return tuple(columns)


def _bracketed(parts: Sequence[Tensor], m: int, r: int) -> tuple[Tensor, Tensor, Tensor] | None:
    """Order statistics ``r``, ``r + 1`` from the values inside a sampled bracket ``(low, high]``.

    Returns ``(v_r, v_r2, ok)`` with ``ok`` (N,) False for the rows whose bracket missed the
    ranks or held too many values (their two values are meaningless), or None when no row
    can use its bracket.
    """
    n = parts[0].shape[0]
    r2 = min(r + 1, m - 1)
    sample = _sample(parts, m)  # (N, S)
    size = sample.shape[1]
    q = r / (m - 1)
    margin = _margin(size, q)
    i_lo, i_hi = math.floor(q * (size - 1) - margin), math.ceil(q * (size - 1) + margin)
    inf = torch.full((n,), float("inf"), dtype=sample.dtype, device=sample.device)
    low = sample.kthvalue(i_lo + 1, dim=1).values if i_lo >= 0 else -inf  # (N,)
    high = sample.kthvalue(i_hi + 1, dim=1).values if i_hi < size else inf
    low_, high_ = low.view(-1, 1), high.view(-1, 1)
    inside, above = [], []  # per part: values in (low, high], and the count above high
    for p in parts:
        gt_low, gt_high = p > low_, p > high_  # (N, m_i) bool; gt_high implies gt_low
        above.append(_row_counts(gt_high))
        inside.append(gt_low ^ gt_high)
    counts = torch.stack([_row_counts(b) for b in inside], dim=1)  # (N, L)
    n_above = sum(above)  # (N,)
    n_inside = counts.sum(1)  # (N,)
    # ranks r .. r2 lie in (low, high] when fewer than m - r2 values are above high and at
    # least m - r are above low; the bracket should also hold few values
    ok = (n_above <= m - 1 - r2) & (n_above + n_inside >= m - r)
    ok &= n_inside <= int(_MAX_CANDIDATES * m)
    if not bool(ok.any()):
        return None
    if not bool(ok.all()):  # rows handed to the direct branch copy nothing out
        counts, n_inside = counts * ok.view(-1, 1), n_inside * ok
        inside = [b & ok.view(-1, 1) for b in inside]
    # In a row of the candidate matrix, rank r of the whole row is rank u = r - (m - n_above
    # - n_inside) among its candidates. Pad each row below its candidates with x = max(u) - u
    # copies of -inf (and above with +inf), so that rank r sits in column max(u) of every row.
    u = torch.where(ok, r - (m - n_above - n_inside), 0)  # (N,)
    t = int(u.max())
    shift = t - u  # (N,) -inf pads before a row's candidates
    width = int((shift + n_inside).max()) + 1  # + 1: room for rank r2 when it is a pad
    cols = torch.arange(width, device=low.device).view(1, -1)
    cand = torch.where(cols < shift.view(-1, 1), -inf.view(-1, 1), inf.view(-1, 1))  # (N, W)
    rows = torch.arange(n, device=low.device)
    start = torch.cumsum(counts, dim=1) - counts + shift.view(-1, 1)  # (N, L): column of a
    for p, b, c, s in zip(parts, inside, counts.unbind(1), start.unbind(1)):  # part's first
        vals = _select(p, b)  # row-major: row 0's values first
        if vals.numel() == 0:
            continue
        row = torch.repeat_interleave(rows, c)  # row of every value
        col = torch.arange(vals.numel(), device=low.device) - (torch.cumsum(c, 0) - c)[row]
        cand[row, col + s[row]] = vals
    v_r, v_r2 = _pair_of_rows(cand, t, owned=True)
    return v_r, (v_r if r2 == r else v_r2), ok


def kth_pair(values: Tensor | Sequence[Tensor], r: int) -> tuple[Tensor, Tensor]:
    """Order statistics ``r`` and ``min(r + 1, M - 1)`` (0-based, ascending) of every row.

    ``values`` (N, M) or a list of (N, m_i) pieces of the rows; -> two (N,) tensors in the
    values' dtype. Exact, ties included.
    """
    parts = [values] if isinstance(values, Tensor) else [v.flatten(1) for v in values]
    m = sum(p.shape[1] for p in parts)
    if not 0 <= r < m:
        raise ValueError(f"rank {r} is outside the rows' {m} values")
    if _clamps(parts, m):
        return _clamped(parts, m, r)
    if m > DIRECT_MAX and parts[0].is_floating_point():
        found = _bracketed(parts, m, r)
        if found is not None:
            v_r, v_r2, ok = found
            if bool(ok.all()):
                return v_r, v_r2
            miss = (~ok).nonzero()[:, 0]  # fallback: these rows go the direct way
            d_r, d_r2 = _direct([p.index_select(0, miss) for p in parts], r)
            return v_r.index_copy(0, miss, d_r), v_r2.index_copy(0, miss, d_r2)
    return _direct(parts, r)


def percentile_threshold(values: Tensor | Sequence[Tensor], sparsity: float) -> Tensor:
    """Per-row ``100 * sparsity`` percentile, equal to numpy's (``method="linear"``), ties included.

    ``values`` (N, M), or a list of (N, m_i) pieces of the rows (never concatenated when the
    rows are long), -> (N,) in float64. The values must be finite (NaN raises a ``ValueError``;
    numpy's NaN from ``inf - inf`` is not reproduced); integer values are read as float64.
    On the CPU, float32 rows are sorted by NumPy where that measures faster than ``topk``
    (rows of at least :data:`CLAMP_MIN` values with the values below a sampled floor raised
    to it, shorter rows whole); everything else is selected by ``topk``.

    Example
    -------
    >>> percentile_threshold(torch.tensor([[0.0, 1.0, 2.0, 3.0]]), 0.5)
    tensor([1.5000], dtype=torch.float64)
    """
    parts = [values] if isinstance(values, Tensor) else [v.flatten(1) for v in values]
    if not parts or any(p.ndim != 2 or p.shape[0] != parts[0].shape[0] for p in parts):
        raise ValueError("values must be an (N, M) tensor or a list of (N, m_i) pieces of the rows")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if not parts[0].is_floating_point():
        parts = [p.double() for p in parts]
    m = sum(p.shape[1] for p in parts)
    if m == 0:
        raise ValueError("the rows are empty: a percentile needs at least one value per row")
    if parts[0].shape[0] == 0:
        return torch.empty(0, dtype=torch.float64, device=parts[0].device)
    # one cheap reduction guards against NaN (the sum is NaN, or inf - inf, only then); the
    # clamped sort finds NaN at the end of its sorted rows instead
    if not _clamps(parts, m):
        if not math.isfinite(float(sum(p.sum() for p in parts))):
            if any(bool(p.isnan().any()) for p in parts):
                raise _nan_error()
    # numpy's linear method, step for step: q / 100, virtual index (M - 1) q, then _lerp
    quantile = (100.0 * sparsity) / 100.0
    virtual = (m - 1) * quantile
    lo = min(math.floor(virtual), m - 1)
    gamma = virtual - lo
    v_lo, v_hi = kth_pair(parts, lo)
    a, b = v_lo.double(), v_hi.double()
    if gamma == 0.0 or lo == m - 1:
        return a
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
