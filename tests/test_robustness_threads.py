"""Issue 17, finding 1: attribution is thread-safe on one shared model.

Several threads hammer one model; every map must equal the single-threaded reference exactly.
The interception's per-call state (site list, names, pass boundaries) belongs to the calling
thread, so one thread's forward pass can never renumber another's sites.
"""

from __future__ import annotations

import threading

import pytest
import torch

import prunegrad_lite as pgl
from prunegrad_lite.models import FashionResNet

THREADS, CALLS = 2, 40


def _model() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FashionResNet(width=8).eval()


def _hammer(model, inputs, method, **options) -> tuple[list, list]:
    """THREADS x CALLS calls of ``method``; returns (maps or exceptions per call, reference)."""
    reference = [pgl.attribute(model, x, method=method, **options) for x in inputs]
    results: list = [[None] * CALLS for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        start.wait()
        for k in range(CALLS):
            i = (k + t) % len(inputs)  # the threads explain different images at the same time
            try:
                results[t][k] = (i, pgl.attribute(model, inputs[i], method=method, **options))
            except Exception as err:  # noqa: BLE001 - recorded and reported by the test
                results[t][k] = (i, err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, reference


@pytest.mark.parametrize("method", ["prunegrad", "prunegrad_random", "guided_backprop", "gradcam"])
def test_threads_share_one_model(method: str) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = _model()
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randn(2, 1, 28, 28, generator=gen) for _ in range(3)]
    results, reference = _hammer(model, inputs, method)
    wrong = []
    for t, row in enumerate(results):
        for k, (i, out) in enumerate(row):
            if isinstance(out, Exception):
                wrong.append(f"thread {t} call {k}: {type(out).__name__}: {out}")
            elif not torch.equal(out, reference[i]):
                err = (out - reference[i]).abs().max().item()
                wrong.append(f"thread {t} call {k}: max error {err:.3g}")
    assert not wrong, f"{len(wrong)} of {THREADS * CALLS} calls wrong: {wrong[:5]}"
    # nothing stays registered on the shared model
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())
