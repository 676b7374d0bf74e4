"""Where and how the package runs: its version, the device, and smoke mode.

The bottom layer of the package (``docs/structure.md``): it imports nothing from it, so every
other module may use it.

* :func:`resolve_device` / :func:`model_device`: the device a computation runs on.
* :func:`smoke_mode`: whether ``$PRUNEGRAD_LITE_SMOKE`` is ``1``, the switch that makes the
  benchmarks and the notebooks run the same code on less work (for CI).

Example
-------
>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["SMOKE_ENV_VAR", "__version__", "model_device", "resolve_device", "smoke_mode"]

__version__ = "0.1.0"  # also pyproject.toml's; tests/test_packaging.py checks they agree

SMOKE_ENV_VAR = "PRUNEGRAD_LITE_SMOKE"


def smoke_mode() -> bool:
    """Whether ``$PRUNEGRAD_LITE_SMOKE`` is ``1`` (surrounding spaces ignored; anything else: no).

    One rule for the benchmarks and the notebooks. Read on every call (not at import), so a
    test can switch it with ``monkeypatch.setenv``.
    """
    return os.environ.get(SMOKE_ENV_VAR, "").strip() == "1"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return a :class:`torch.device`: the one asked for, else CUDA when available, else CPU.

    Raises a ``ValueError`` when CUDA is asked for on a machine that has none.

    Example
    -------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:0' or None") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but this machine has no CUDA GPU: "
            "pass device='cpu' or device=None (CUDA when available, else CPU)"
        )
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")
