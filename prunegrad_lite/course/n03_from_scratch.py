"""Notebook 03's from-scratch PruneGrad: the model it can hook.

Used by ``notebooks/03_prunegrad.ipynb`` (the cell tagged ``from-scratch`` and the check against
``pgl.PruneGrad``); the lesson's other computations are in :mod:`.n03_prunegrad` and
:mod:`.n03_perturbation`.
"""

from __future__ import annotations

import copy

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

__all__ = ["relu_calls_as_modules"]


def relu_calls_as_modules(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose functional ReLU calls are ``nn.ReLU`` modules: same function.

    The from-scratch PruneGrad of notebook 03 finds the ReLU outputs with forward hooks on
    ``nn.ReLU`` modules, and hooks see modules only: a ``F.relu(...)`` written in ``forward`` (the
    shipped FashionResNet's stem) has no module to hook. The copy is traced with ``torch.fx``
    and every ``F.relu`` / ``torch.relu`` / ``Tensor.relu`` call becomes a call of a new
    ``nn.ReLU`` module (``relu_call0``, ...). The package itself needs no such copy: it
    intercepts the activation *functions* (:mod:`~prunegrad_lite.attribution.activations`).
    The weights are copied, so the model is left unchanged. ReLU6 and in-place functional
    calls are not converted (the shipped Fashion-MNIST model has neither).

    Example
    -------
    >>> hookable = relu_calls_as_modules(model)
    >>> torch.equal(hookable(x), model(x))
    True
    """
    relu_functions = {F.relu, torch.relu}
    traced = torch.fx.symbolic_trace(copy.deepcopy(model))
    k = 0
    for node in list(traced.graph.nodes):
        functional = node.op == "call_function" and node.target in relu_functions
        method = node.op == "call_method" and node.target == "relu"
        in_place = node.kwargs.get("inplace", False) or (len(node.args) > 1 and node.args[1])
        if not (functional or method) or in_place:
            continue
        name = f"relu_call{k}"
        k += 1
        traced.add_submodule(name, nn.ReLU())
        with traced.graph.inserting_after(node):
            call = traced.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(call)
        traced.graph.erase_node(node)
    traced.graph.lint()
    traced.recompile()
    return traced.train(model.training)
