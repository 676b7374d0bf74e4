"""Choosing the device a computation runs on: kept as a name only, the code is in
:mod:`prunegrad_lite.runtime` (import it from there)."""

from __future__ import annotations

from prunegrad_lite.runtime import model_device, resolve_device

__all__ = ["resolve_device", "model_device"]
