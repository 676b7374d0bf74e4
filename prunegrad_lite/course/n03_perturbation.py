"""Notebook 03, PruneGrad as the best local perturbation: the logit's raise per direction.

Used by ``notebooks/03_prunegrad.ipynb``.

PruneGrad's map is ``dS_c^pruned / dx``: the direction in which a small change of the input
raises the target logit of the *pruned* network fastest (v1 of the paper: the perturbation of
the input that changes only the important learned features). :func:`perturbation_gains` checks
that claim numerically against other directions (:data:`DIRECTIONS`) and against the iterative
perturbation, in the pruned and in the unpruned network; :func:`plot_perturbation_gains` draws
the gains. The lesson's maps and widgets are in :mod:`.n03_prunegrad`.

Example
-------
>>> gains = perturbation_gains(model, x, sparsity=0.9, epsilons=[0.1, 0.5, 1.0])
>>> {name: g.mean(1) for name, g in gains.gains.items()}     # prunegrad >= gradient >= random
>>> fig = plot_perturbation_gains(gains)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from prunegrad_lite.attribution.base import (
    TargetLike,
    check_inputs,
    check_model,
    input_gradient,
    preserve_model_state,
    target_scores,
)
from prunegrad_lite.attribution.relu6 import clip_treatment_options
from prunegrad_lite.attribution.variants import pruned_perturbation
from prunegrad_lite.attribution.pruning import (
    apply_masks,
    check_sparsity,
    neuron_scores,
    masks_from_scores,
)

__all__ = [
    "DIRECTIONS",
    "PerturbationGains",
    "perturbation_gains",
    "plot_perturbation_gains",
]

#: The perturbations :func:`perturbation_gains` compares, all of L2 norm epsilon per sample.
DIRECTIONS = {
    "prunegrad": "epsilon * PruneGrad / ||PruneGrad|| (gradient of the pruned network)",
    "gradient": "epsilon * gradient / ||gradient|| (gradient of the unpruned network)",
    "random": "epsilon * a random Gaussian direction / its norm",
    "iterative": "projected gradient ascent in the pruned network within ||delta|| <= epsilon",
}


@dataclass
class PerturbationGains:
    """How much each perturbation of norm epsilon raises the target logit, in both networks.

    ``gains`` is measured in the pruned network, whose own gradient PruneGrad is: there
    PruneGrad's direction wins to first order *by construction*, so that measurement alone is
    circular. ``unpruned`` applies the same perturbations to the network being explained, where
    to first order the plain gradient wins.
    """

    epsilons: np.ndarray  # (E,) L2 norms of the perturbations, in normalised input units
    gains: dict[str, np.ndarray]  # direction -> (E, N): S_c^pruned(x + delta) - S_c^pruned(x)
    sparsity: float
    steps: int  # iterations of the iterative perturbation
    # direction -> (E, N): S_c(x + delta) - S_c(x) in the unpruned network, same deltas
    unpruned: dict[str, np.ndarray] = field(default_factory=dict)

    def of(self, network: str) -> dict[str, np.ndarray]:
        """The gains in ``"pruned"`` or ``"unpruned"`` network."""
        if network not in ("pruned", "unpruned"):
            raise ValueError(f"network must be 'pruned' or 'unpruned', got {network!r}")
        return self.gains if network == "pruned" else self.unpruned

    def winners(self, network: str) -> list[str]:
        """Per epsilon, the direction with the largest mean gain in ``network`` (E,)."""
        gains = self.of(network)
        names = list(gains)
        means = np.stack([gains[name].mean(1) for name in names])  # (D, E)
        return [names[i] for i in means.argmax(0)]

    def table(self) -> str:
        """Mean gain of every direction per epsilon in both networks, and the winner of each."""
        names = list(self.gains)
        head = f"{'network':<9} {'epsilon':>8}  " + " ".join(f"{n:>10}" for n in names)
        rows = [head + "  winner"]
        for network in ("pruned", "unpruned"):
            gains, best = self.of(network), self.winners(network)
            for e, eps in enumerate(self.epsilons):
                means = " ".join(f"{gains[n][e].mean():>10.4f}" for n in names)
                rows.append(f"{network:<9} {eps:>8g}  {means}  {best[e]}")
        return "\n".join(rows)


def _unit(d: Tensor) -> Tensor:
    norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)  # (N,)
    return d / norm.view(-1, *([1] * (d.ndim - 1)))


def perturbation_gains(
    model: nn.Module,
    inputs: Tensor,
    sparsity: float,
    epsilons: Sequence[float],
    target: TargetLike = None,
    *,
    steps: int = 10,
    seed: int = 0,
) -> PerturbationGains:
    """Raise of the target logit for each direction of :data:`DIRECTIONS`, in both networks.

    The masks come from the Taylor scores at ``sparsity`` (global threshold) and stay fixed;
    ``gains`` is measured in that pruned network, whose steepest-ascent direction PruneGrad is
    (so PruneGrad wins there to first order by construction), ``unpruned`` in the original
    network with the same perturbations (there the plain gradient is the steepest). The
    iterative perturbation takes ``steps`` steps of :func:`~prunegrad_lite.pruned_perturbation`
    per epsilon. ``seed`` draws the random direction.

    Example
    -------
    >>> g = perturbation_gains(model, x, 0.9, [0.05, 0.2, 1.0])
    >>> g.gains["prunegrad"].shape        # (3, N)
    """
    sparsity = check_sparsity(sparsity)
    if any(e <= 0 for e in epsilons):
        raise ValueError(f"epsilons must be > 0, got {list(epsilons)}")
    check_model(model)
    x = check_inputs(model, inputs)
    with preserve_model_state(model):
        rule, st = clip_treatment_options("auto")  # as PruneGrad(model, sparsity)
        scores = neuron_scores(model, x, target, "taylor", straight_through=st)
        t = scores.target
        masks = masks_from_scores(scores, sparsity, rule=rule)
        gen = torch.Generator().manual_seed(seed)
        directions = {
            "gradient": _unit(input_gradient(model, x, t)[0]),
            "random": _unit(torch.randn(x.shape, generator=gen).to(x.device, x.dtype)),
        }
        all_deltas: list[dict[str, Tensor]] = []
        with apply_masks(model, masks):
            directions["prunegrad"] = _unit(input_gradient(model, x, t)[0])
            with torch.no_grad():
                base = target_scores(model(x), t)  # (N,)
            gains: dict[str, list[Tensor]] = {name: [] for name in DIRECTIONS}
            for eps in epsilons:  # one pruned forward pass per direction and epsilon
                deltas = {name: eps * d for name, d in directions.items()}
                deltas["iterative"] = pruned_perturbation(model, x, t, epsilon=eps, steps=steps)
                all_deltas.append(deltas)
                with torch.no_grad():
                    for name in DIRECTIONS:
                        gains[name].append(target_scores(model(x + deltas[name]), t) - base)
        unpruned: dict[str, list[Tensor]] = {name: [] for name in DIRECTIONS}
        with torch.no_grad():  # the same perturbations, in the network being explained
            base = target_scores(model(x), t)
            for deltas in all_deltas:
                for name in DIRECTIONS:
                    unpruned[name].append(target_scores(model(x + deltas[name]), t) - base)

    def arrays(g: dict[str, list[Tensor]]) -> dict[str, np.ndarray]:
        return {k: torch.stack(v).cpu().double().numpy() for k, v in g.items()}

    return PerturbationGains(
        epsilons=np.asarray(epsilons, dtype=np.float64),
        gains=arrays(gains),
        sparsity=sparsity,
        steps=steps,
        unpruned=arrays(unpruned),
    )


# -------------------------------------------------- figures: the logit's raise per direction


def plot_perturbation_gains(gains: PerturbationGains) -> Figure:
    """Raise of the target logit against the perturbation's L2 norm, per direction: two panels.

    Left the pruned network (where PruneGrad is the gradient, so it wins to first order by
    construction), right the unpruned network (where the plain gradient is the gradient); the
    right panel is left out when ``gains.unpruned`` is empty. Mean over images with a band of
    one standard error.
    """
    networks = ["pruned", "unpruned"] if gains.unpruned else ["pruned"]
    fig, axes = plt.subplots(
        1, len(networks), figsize=(4.4 * len(networks), 3.8), layout="constrained", squeeze=False
    )
    colors = {
        "prunegrad": "tab:red",
        "iterative": "tab:purple",
        "gradient": "tab:blue",
        "random": "tab:gray",
    }
    labels = {
        "prunegrad": "PruneGrad direction (gradient of the pruned net)",
        "gradient": "plain gradient direction (unpruned net)",
        "random": "random direction",
        "iterative": f"iterative ascent in the pruned net ({gains.steps} steps)",
    }
    titles = {
        "pruned": "measured in the pruned network\n(PruneGrad is its gradient: it wins by construction)",
        "unpruned": "measured in the unpruned network\n(the plain gradient is its gradient)",
    }
    for ax, network in zip(axes[0], networks):
        for name, values in gains.of(network).items():
            mean = values.mean(1)
            n = values.shape[1]
            err = values.std(1, ddof=1) / np.sqrt(n) if n > 1 else 0 * mean
            ax.plot(
                gains.epsilons,
                mean,
                "--" if name == "iterative" else "-",
                marker="o",
                color=colors.get(name),
                label=labels.get(name, name),
            )
            ax.fill_between(
                gains.epsilons, mean - err, mean + err, color=colors.get(name), alpha=0.2
            )
        ax.set_xscale("log")
        ax.set_xticks(gains.epsilons, [f"{e:g}" for e in gains.epsilons])
        ax.minorticks_off()
        ax.set_xlabel(
            "perturbation size epsilon = ||delta||_2\n(normalised input units)", fontsize=8
        )
        ax.set_ylabel(f"S_c(x + delta) - S_c(x)\n{network} network (logit)", fontsize=8)
        ax.set_title(titles[network], fontsize=9)
    axes[0][0].legend(fontsize=7)
    n = next(iter(gains.gains.values())).shape[1]
    fig.suptitle(
        f"Which perturbation of norm epsilon raises the class logit most? (sparsity "
        f"{gains.sparsity:.2f}, mean and standard error over {n} images)",
        fontsize=10,
    )
    return fig
