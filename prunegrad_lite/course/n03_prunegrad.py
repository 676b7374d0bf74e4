"""Notebook 03, PruneGrad: the best local perturbation of the pruned network, and its sweep.

Used by ``notebooks/03_prunegrad.ipynb``.

PruneGrad's map is ``dS_c^pruned / dx``: the direction in which a small change of the input
raises the target logit of the *pruned* network fastest (v1 of the paper: the perturbation of
the input that changes only the important learned features). :func:`perturbation_gains` checks
that claim numerically against other directions and against the iterative perturbation, and
:func:`sparsity_maps` computes PruneGrad's map at several sparsities from one set of scores
(sparsity 0 is the plain gradient). :func:`plot_perturbation_gains` draws the gains and
:func:`build_prunegrad_widget` moves the sparsity.

Example
-------
>>> gains = perturbation_gains(model, x, sparsity=0.9, epsilons=[0.1, 0.5, 1.0])
>>> {name: g.mean(1) for name, g in gains.gains.items()}     # prunegrad >= gradient >= random
>>> sweep = sparsity_maps(model, x[:1], [0.0, 0.5, 0.9])     # sweep.maps[0.9]: (1, C, H, W)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
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
from prunegrad_lite.benchmarks.pixel_perturbation import probability_change
from prunegrad_lite.course.shared import (
    LessonWidget,
    check_display_images,
    clip_maps,
    image_control,
    sparsity_slider,
)
from prunegrad_lite.figures import plot_sparsity_sweep

__all__ = [
    "DIRECTIONS",
    "PerturbationGains",
    "SparsityMaps",
    "build_prunegrad_widget",
    "build_target_class_widget",
    "perturbation_gains",
    "plot_perturbation_gains",
    "sparsity_maps",
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


@dataclass
class SparsityMaps:
    """PruneGrad's maps of the same inputs at several sparsities, from one set of scores."""

    maps: dict[float, Tensor]  # sparsity -> (N, C, H, W) signed maps, on the inputs' device
    kept_fraction: dict[float, np.ndarray]  # sparsity -> (N,) fraction of neurons kept
    prob: np.ndarray  # (N,) target probability of the unpruned network
    pruned_prob: dict[float, np.ndarray]  # sparsity -> (N,) of the pruned network
    target: Tensor  # (N,)

    def of_sample(self, sample: int = 0) -> dict[float, Tensor]:
        """Sparsity -> the map of one sample (C, H, W): what ``plot_sparsity_sweep`` takes."""
        return {s: m[sample] for s, m in self.maps.items()}

    def change(self, sparsity: float) -> np.ndarray:
        """Relative change of the target probability at ``sparsity``, ``|p - p'| / p`` (N,)."""
        return probability_change(
            torch.as_tensor(self.prob), torch.as_tensor(self.pruned_prob[sparsity])
        ).numpy()


def sparsity_maps(
    model: nn.Module,
    inputs: Tensor,
    sparsities: Sequence[float],
    target: TargetLike = None,
    clip_treatment: str = "auto",
) -> SparsityMaps:
    """PruneGrad at each sparsity: Taylor scores once, then masks and one gradient per sparsity.

    Equal to ``PruneGrad(model, sparsity=s, clip_treatment=clip_treatment).attribute(inputs,
    target)`` for every ``s``, at the cost of 1 + S forward/backward passes instead of 2 S.
    Sparsity 0 gives the plain gradient.

    Example
    -------
    >>> sweep = sparsity_maps(model, x[:1], [0.0, 0.5, 0.9, 0.99])
    >>> fig = plot_sparsity_sweep(image, sweep.of_sample(0))
    """
    levels = [check_sparsity(s) for s in sparsities]
    check_model(model)
    x = check_inputs(model, inputs)
    maps, kept, pruned = {}, {}, {}
    with preserve_model_state(model):
        rule, st = clip_treatment_options(clip_treatment)
        scores = neuron_scores(model, x, target, "taylor", straight_through=st)
        t = scores.target
        for s in levels:
            masks = masks_from_scores(scores, s, rule=rule)
            with apply_masks(model, masks):
                grad, logits = input_gradient(model, x, t)
            maps[s] = grad.detach().to(inputs.device)
            kept[s] = masks.kept_fraction.cpu().numpy()
            pruned[s] = (
                logits.softmax(-1).gather(1, t.view(-1, 1)).squeeze(1).cpu().double().numpy()
            )
    prob = scores.logits.softmax(-1).gather(1, t.view(-1, 1)).squeeze(1).cpu().double().numpy()
    return SparsityMaps(maps, kept, prob, pruned, t)


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
        1, len(networks), figsize=(6.0 * len(networks), 4.2), layout="constrained", squeeze=False
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
        ax.set_xlabel("perturbation size epsilon = ||delta||_2 (normalised input units)")
        ax.set_ylabel(f"S_c(x + delta) - S_c(x), {network} network (logit)")
        ax.set_title(titles[network], fontsize=9)
    axes[0][0].legend(fontsize=7)
    n = next(iter(gains.gains.values())).shape[1]
    fig.suptitle(
        f"Which perturbation of norm epsilon raises the class logit most? (sparsity "
        f"{gains.sparsity:.2f}, mean and standard error over {n} images)",
        fontsize=10,
    )
    return fig


# -------------------------------------------------- the widget: PruneGrad's map as sparsity moves


def build_prunegrad_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    sparsity: float = 0.9,
    image_names: Sequence[str] | None = None,
) -> LessonWidget:
    """Notebook 03: sparsity and image, showing the plain gradient next to PruneGrad's map.

    The result is a :class:`~prunegrad_lite.course.SparsityMaps` at sparsities 0 (the plain
    gradient) and the slider's value; the title gives the target probability change.
    """
    check_display_images(images, display_images)
    control = sparsity_slider(sparsity)

    def compute(sparsity: float, image: int):
        return sparsity_maps(model, images[image : image + 1], sorted({0.0, sparsity}))

    def draw(result, sparsity: float, image: int) -> Figure:
        title = (
            f"Gradient of the network pruned at sparsity {sparsity:.2f}:\n"
            f"{result.kept_fraction[sparsity][0]:.1%} of neurons kept, p(target) "
            f"{result.prob[0]:.3f} -> {result.pruned_prob[sparsity][0]:.3f}"
        )
        maps = clip_maps(result.of_sample(0))
        return plot_sparsity_sweep(display_images[image], maps, title=title)

    controls = {"sparsity": control, "image": image_control(len(images), image_names)}
    return LessonWidget("PruneGrad: move the sparsity, pick an image", controls, compute, draw)


# -------------------------------------------------- the widget: which class is explained


def build_target_class_widget(
    model: nn.Module,
    images: Tensor,
    display_images: Tensor | np.ndarray,
    class_names: Sequence[str],
    sparsity: float = 0.9,
    image_names: Sequence[str] | None = None,
) -> LessonWidget:
    """Notebook 03: pick an image and the class to explain; gradient and PruneGrad of that class.

    PruneGrad is class-specific: the Taylor scores, hence the masks, are those of the chosen
    class's logit. The result is a :class:`SparsityMaps` at sparsities 0 (the plain gradient of
    the class) and ``sparsity``, for the chosen class; the title says which class is explained,
    its probability, and what the network predicts.
    """
    check_display_images(images, display_images)
    sparsity = check_sparsity(sparsity)
    k = len(class_names)
    target = widgets.Dropdown(
        options=[(f"{c}: {name}", c) for c, name in enumerate(class_names)],
        value=0,
        description="explained class",
        style={"description_width": "initial"},
    )
    with torch.no_grad():
        predicted = model(check_inputs(model, images[:1])).argmax(1)
    target.value = int(predicted[0]) if int(predicted[0]) < k else 0

    def compute(image: int, target: int) -> SparsityMaps:
        return sparsity_maps(model, images[image : image + 1], sorted({0.0, sparsity}), target)

    def draw(result: SparsityMaps, image: int, target: int) -> Figure:
        with torch.no_grad():
            probs = model(check_inputs(model, images[image : image + 1])).softmax(-1)[0]
        top = int(probs.argmax())
        title = (
            f"explained class: {class_names[target]} (p={float(probs[target]):.3f}); "
            f"the network predicts {class_names[top]} (p={float(probs[top]):.3f})\n"
            f"PruneGrad at sparsity {sparsity:.2f}: {result.kept_fraction[sparsity][0]:.1%} of "
            f"neurons kept, p(class) {result.prob[0]:.3f} -> {result.pruned_prob[sparsity][0]:.3f}"
        )
        return plot_sparsity_sweep(
            display_images[image], clip_maps(result.of_sample(0)), title=title
        )

    controls = {"image": image_control(len(images), image_names), "target": target}
    return LessonWidget(
        "PruneGrad is class-specific: pick the class to explain", controls, compute, draw
    )
