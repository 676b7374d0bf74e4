"""Smoke mode: the same code on less work, switched by ``$PRUNEGRAD_LITE_SMOKE``.

The bottom layer: it imports nothing of the package, so every other module (the benchmarks, the
course) can ask it. ``PRUNEGRAD_LITE_SMOKE=1`` lets CI run every notebook and the benchmarks'
``smoke`` preset in seconds; the numbers they print are then not meaningful.

Example
-------
>>> smoke_mode()        # True when PRUNEGRAD_LITE_SMOKE=1
False
"""

from __future__ import annotations

import os

__all__ = ["SMOKE_ENV_VAR", "smoke_mode"]

SMOKE_ENV_VAR = "PRUNEGRAD_LITE_SMOKE"


def smoke_mode() -> bool:
    """Whether ``$PRUNEGRAD_LITE_SMOKE`` is ``1`` (surrounding spaces ignored; anything else: no).

    The same rule for the notebooks and the benchmarks. Read on every call (not at import), so
    a test can switch it with ``monkeypatch.setenv``.
    """
    return os.environ.get(SMOKE_ENV_VAR, "").strip() == "1"
