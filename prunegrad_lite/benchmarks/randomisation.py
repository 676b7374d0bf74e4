"""Re-initialising a network stage by stage, from the logits down: the sanity checks' tool.

:func:`randomisation_stages` finds the layers that hold parameters in forward order and groups
them into stages; :func:`randomise_stage_` (the authors' N(0, 0.1**2)) and :func:`reset_stage_`
(each layer's own ``reset_parameters()``) re-initialise one stage in place, with the weights of
stage i in weight draw d from :func:`stage_generator` (seed, i, d), so a seed gives the same
weights on every device. The protocol that uses them is in :mod:`.sanity`.

Example
-------
>>> stages = randomisation_stages(FashionResNet(), torch.zeros(1, 1, 28, 28), depth=1)
>>> randomise_stage_(model, stages[0], stage_generator(seed=0, index=0))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunegrad_lite.runtime import model_device

__all__ = [
    "Stage",
    "check_resettable",
    "randomisation_stages",
    "randomise_stage_",
    "reset_stage_",
    "stage_generator",
]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Stage:
    """One randomisation stage: a name and the modules (qualified names) re-initialised."""

    name: str
    modules: tuple[str, ...]


def _forward_order(model: nn.Module, example: Tensor) -> list[str]:
    """Names of the modules with their own parameters, in the order a forward pass calls them."""
    owners = {
        module: name
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    }
    order: list[str] = []
    handles = []
    try:
        for module, name in owners.items():
            handles.append(
                module.register_forward_pre_hook(
                    lambda m, args, name=name: order.append(name) if name not in order else None
                )
            )
        with torch.no_grad():
            model(example.to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return order


def randomisation_stages(
    model: nn.Module, example: Tensor, depth: int | None = None
) -> list[Stage]:
    """The stages the sanity checks re-initialise, **from the logits down** to the first layer.

    Parameters
    ----------
    model : the network (one forward pass on ``example`` finds the order; hooks are removed).
    example : one input batch, e.g. ``images[:1]``.
    depth : None (default): each module with parameters is a stage, normalisation layers
        joining the layer before them; an int d: consecutive modules whose names share the first
        d dotted parts form one stage (``depth=1`` on a ResNet: stem, layer1, ..., fc).

    Example
    -------
    >>> [s.name for s in randomisation_stages(FashionResNet(), torch.zeros(1, 1, 28, 28), 1)]
    ['fc', 'layer3', 'layer2', 'layer1', 'conv1']
    """
    modules = dict(model.named_modules())
    groups: list[tuple[str, list[str]]] = []
    for name in _forward_order(model, example):
        key = name if depth is None else ".".join(name.split(".")[:depth])
        joins_previous = groups and (
            isinstance(modules[name], _NORMS) or (depth is not None and groups[-1][0] == key)
        )
        if joins_previous:
            groups[-1][1].append(name)
        else:
            groups.append((key, [name]))
    if not groups:
        raise ValueError("the model has no parameters to randomise")
    return [Stage(key, tuple(names)) for key, names in reversed(groups)]


@torch.no_grad()
def randomise_stage_(
    model: nn.Module, stage: Stage, generator: torch.Generator, std: float = 0.1
) -> None:
    """Re-initialise, in place, every parameter of the stage's modules from N(0, std**2).

    Buffers (BatchNorm running statistics) are kept. Values are drawn on the CPU from
    ``generator`` and copied, so a seed gives the same weights on every device.
    """
    modules = dict(model.named_modules())
    for name in stage.modules:
        for param in modules[name].parameters(recurse=False):
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_(values * std)


def reset_stage_(model: nn.Module, stage: Stage, generator: torch.Generator) -> None:
    """Re-initialise, in place, the stage's modules with their own ``reset_parameters()``.

    A convolution or linear layer gets PyTorch's default (Kaiming-uniform) initialisation, a
    BatchNorm gamma 1, beta 0 and its running statistics reset (mean 0, variance 1). The draws
    are made on a CPU copy of each module with the global RNG seeded from ``generator`` inside
    ``torch.random.fork_rng`` (the caller's RNG state is left as it was), so a seed gives the same
    weights on every device.
    """
    modules = dict(model.named_modules())
    check_resettable(model, [stage])
    for name in stage.modules:
        module = modules[name]
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        fresh = copy.deepcopy(module).to("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.reset_parameters()
        with torch.no_grad():
            for key, value in fresh.state_dict(keep_vars=False).items():
                if "." in key:
                    continue  # a child module's own entry: its stage resets it
                target = getattr(module, key)
                if isinstance(target, Tensor):
                    target.copy_(value)


def check_resettable(model: nn.Module, stages: list[Stage]) -> None:
    """Raise a ``ValueError`` naming the first module of ``stages`` without ``reset_parameters()``
    (the "reset" init needs it): the sanity checks ask before any step runs."""
    modules = dict(model.named_modules())
    for stage in stages:
        for name in stage.modules:
            if not hasattr(modules[name], "reset_parameters"):
                raise ValueError(
                    f"module {name!r} ({type(modules[name]).__name__}) has no "
                    "reset_parameters(): use inits=('authors',) for this model"
                )


def stage_generator(seed: int, index: int, draw: int = 0) -> torch.Generator:
    """The generator of stage ``index``'s new weights in weight draw ``draw`` (draw 0 as before
    draws existed)."""
    return torch.Generator().manual_seed(seed * 100_003 + index + draw * 1_000_000_007)
