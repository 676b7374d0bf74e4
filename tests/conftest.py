"""Shared test fixtures; keep this file small."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder set as ``$PRUNEGRAD_LITE_DATA``, so no test reads or writes ``data/``."""
    monkeypatch.setenv("PRUNEGRAD_LITE_DATA", str(tmp_path))
    return tmp_path
