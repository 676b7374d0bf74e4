"""Shared test fixtures; keep this file small."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder set as ``$PRUNEGRAD_LITE_DATA``, so no test reads or writes ``data/``."""
    monkeypatch.setenv("PRUNEGRAD_LITE_DATA", str(tmp_path))
    return tmp_path


@pytest.fixture
def agg():
    """Draw off-screen and close every figure a test made (``pytestmark`` of the figure tests)."""
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:
        plt.close(num)
