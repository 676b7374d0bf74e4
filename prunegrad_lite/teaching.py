"""What every notebook of the course needs: smoke mode, sizes, the environment check, predictions.

Smoke mode runs the *same* code on less work, so CI can execute every notebook in seconds:
set the environment variable ``PRUNEGRAD_LITE_SMOKE=1`` and every size chosen with
:func:`pick` takes its smoke value. Nothing here changes global state.

Example
-------
>>> n_images = pick(64, 8)          # 64 normally, 8 when PRUNEGRAD_LITE_SMOKE=1
>>> print(environment())            # versions, device, threads, smoke mode, weights found
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from prunegrad_lite.device import model_device, resolve_device

__all__ = [
    "SMOKE_ENV_VAR",
    "Environment",
    "environment",
    "markdown",
    "pick",
    "prediction_labels",
    "smoke_mode",
]

SMOKE_ENV_VAR = "PRUNEGRAD_LITE_SMOKE"
T = TypeVar("T")


def smoke_mode() -> bool:
    """Whether ``$PRUNEGRAD_LITE_SMOKE`` is ``1`` (surrounding spaces ignored; anything else: no).

    The same rule as the benchmarks' smoke mode. Read on every call (not at import), so a test
    can switch it with ``monkeypatch.setenv``.
    """
    return os.environ.get(SMOKE_ENV_VAR, "").strip() == "1"


def pick(normal: T, smoke: T) -> T:
    """``smoke`` in smoke mode, else ``normal``: how notebooks size their work.

    Example
    -------
    >>> steps = pick(50, 8)     # Integrated Gradients steps
    """
    return smoke if smoke_mode() else normal


@dataclass(frozen=True)
class Environment:
    """What a learner should check before starting: versions, device, threads, files."""

    python: str
    torch: str
    device: torch.device  # where the notebooks will compute
    device_name: str  # the GPU's name, or the CPU's architecture
    cpu_threads: int  # torch's intra-op threads
    smoke: bool  # smoke mode on?
    weights: dict[str, bool]  # model name -> are its default weights available offline?

    def __str__(self) -> str:
        rows = [
            ("python", self.python),
            ("torch", self.torch),
            ("device", f"{self.device} ({self.device_name})"),
            ("CPU threads", str(self.cpu_threads)),
            ("smoke mode", f"{self.smoke} (${SMOKE_ENV_VAR})"),
        ]
        rows += [
            (f"weights {name}", "found" if ok else "missing") for name, ok in self.weights.items()
        ]
        return "\n".join(f"{key:<28} {value}" for key, value in rows)


def environment(
    device: str | torch.device | None = None,
    models: Sequence[str] = ("fashion_mnist", "efficientnet_lite0"),
) -> Environment:
    """Versions, the device :func:`~prunegrad_lite.resolve_device` picks, and which weights exist.

    Nothing is downloaded: the weights check only looks for files and packages.

    Example
    -------
    >>> env = environment()
    >>> env.device.type in ("cpu", "cuda")
    True
    """
    from prunegrad_lite.models import weights_available

    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.machine() or "cpu"
    return Environment(
        python=platform.python_version(),
        torch=torch.__version__,
        device=dev,
        device_name=name,
        cpu_threads=torch.get_num_threads(),
        smoke=smoke_mode(),
        weights={m: weights_available(m) for m in models},
    )


def prediction_labels(
    model: nn.Module, inputs: Tensor, class_names: Sequence[str], batch_size: int = 64
) -> list[str]:
    """One label per input, ``"<predicted class> (p=0.93)"``, from the model's softmax.

    Inputs are moved to the model's device; the model is run without gradients.

    Example
    -------
    >>> prediction_labels(model, x[:2], data.classes)
    ['Ankle boot (p=0.97)', 'Pullover (p=0.88)']
    """
    device = model_device(model)
    labels: list[str] = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            probs = model(inputs[start : start + batch_size].to(device)).softmax(-1)  # (B, K)
            p, c = probs.max(dim=1)
            labels += [f"{class_names[int(k)]} (p={float(q):.2f})" for q, k in zip(p, c)]
    return labels


def markdown(text: str) -> Any:
    """``text`` as rendered Markdown in a notebook (e.g. a benchmark's ``to_markdown()`` table).

    Returns an ``IPython.display.Markdown`` object: the last expression of a cell displays it;
    outside a notebook its ``data`` attribute holds the text.

    Example
    -------
    >>> markdown(result.to_markdown())
    """
    from IPython.display import Markdown

    return Markdown(text)
