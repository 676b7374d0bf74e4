"""ROAR: the retraining recipe's checkpointing, the leak controls (mask-only, other-class
ranking) on a task whose evidence is known, per-image units, comparisons and presets.

The quadrant task: 8x8 noise images in 4 classes; class c raises quadrant c. The explained
model reads only the quadrants. A map that marks the predicted class's quadrant is
class-dependent: its removal mask alone tells the class. The same map for a random class the
model did not predict marks another quadrant: its mask says at best "not that one" (1/3 for 4
classes), so the mask-only network stays near chance.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from prunegrad_lite.attribution.base import Attribution, TargetLike
from prunegrad_lite.benchmarks import RoarConfig, roar
from prunegrad_lite.benchmarks.roar import recipe_hash
from prunegrad_lite.benchmarks.roar_models import RoarNet
from prunegrad_lite.training import TrainConfig, train_model

QUADRANTS = [(slice(0, 4), slice(0, 4)), (slice(0, 4), slice(4, 8))]
QUADRANTS += [(slice(4, 8), slice(0, 4)), (slice(4, 8), slice(4, 8))]
RECIPE = TrainConfig(epochs=4, batch_size=64, lr=0.05, augment=False, num_classes=4)


def quadrant_images(n: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(n, 1, 8, 8, generator=gen)
    y = torch.randint(0, 4, (n,), generator=gen)
    for c, (rows, cols) in enumerate(QUADRANTS):
        x[y == c, :, rows, cols] += 2.0
    return x, y


class QuadrantModel(nn.Module):
    """logits[c] = mean of quadrant c: nothing else counts."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: Tensor) -> Tensor:  # (N, 1, 8, 8) -> (N, 4)
        q = [x[:, :, r, c].mean(dim=(1, 2, 3)) for r, c in QUADRANTS]
        return torch.stack(q, dim=1) * self.scale


class QuadrantMap(Attribution):
    """1 on the target class's quadrant: the perfect map, and a class-dependent one."""

    name = "quadrant"

    def _attribute(self, inputs: Tensor, target: TargetLike) -> Tensor:
        out = torch.zeros_like(inputs)
        t = torch.as_tensor(target).view(-1).expand(len(inputs))
        for c, (rows, cols) in enumerate(QUADRANTS):
            out[t == c, :, rows, cols] = 1.0
        return out


def linear_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 4))


def test_class_dependent_mask_is_read_and_the_other_class_mask_is_not(tmp_path):
    train, test = quadrant_images(800, seed=1), quadrant_images(400, seed=2)
    config = RoarConfig(
        fractions=(0.25,),
        seeds=(0, 1),
        recipe=RECIPE,
        mask_only=True,
        other_class=("quadrant",),
        longer_reference=0,
    )
    result = roar(
        QuadrantModel().eval(),
        train,
        test,
        [QuadrantMap, "random"],
        config,
        cache_dir=tmp_path,
        device="cpu",
        progress=False,
        model_fn=linear_model,
    )
    assert result.methods == ["quadrant", "random", "quadrant@other_class"]
    leak = {m: result.score(m, "mask_only@25%").mean for m in ("quadrant", "quadrant@other_class")}
    assert leak["quadrant"] > 0.95  # the label leak: the mask alone says the class
    assert leak["quadrant@other_class"] < 0.45  # 1/3 at best: "not this quadrant"
    # ROAR alone is fooled by the leak: removing the evidence keeps the accuracy ...
    assert result.score("quadrant", "acc@25%").mean > 0.95
    # ... while the class-agnostic removal of another quadrant keeps the evidence, and the
    # mask-only control is what tells the two apart
    assert result.score("quadrant@other_class", "acc@25%").mean > 0.9
    # per-image correctness for every seed, and paired comparisons with verdicts
    units = result.unit_values("quadrant", "accuracy", "mask_only", 0)
    assert units.shape == (2, 400) and set(units.ravel().tolist()) <= {0.0, 1.0}
    assert units.mean() == pytest.approx(leak["quadrant"])
    rows = [
        c
        for c in result.settings["comparisons"]
        if (c["a"], c["b"], c["variant"]) == ("quadrant@other_class", "quadrant", "mask_only")
    ]
    assert rows == []  # PruneGrad-vs-others and others-vs-random only
    vs_random = [
        c
        for c in result.settings["comparisons"]
        if (c["a"], c["b"], c["variant"], c["at"]) == ("quadrant", "random", "roar", "25%")
    ]
    assert len(vs_random) == 1 and vs_random[0]["seeds"] == 2 and vs_random[0]["images"] == 400
    assert vs_random[0]["low"] <= vs_random[0]["difference"] <= vs_random[0]["high"]


def test_train_model_keeps_the_best_validation_checkpoint():
    x, y = quadrant_images(256, seed=5)
    val = quadrant_images(128, seed=6)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, augment=False, num_classes=4)
    result = train_model((x, y), val, config, progress=False, model_fn=linear_model, validation=val)
    vals = [h.validation_accuracy for h in result.history]
    assert result.best_epoch == 1 + vals.index(max(vals))
    assert result.validation_accuracy == max(vals)
    assert result.test_accuracy == pytest.approx(max(vals))  # test = validation set here
    assert all(h.test_accuracy is None for h in result.history)  # test evaluated once


def test_recipe_hash_keys_the_network_and_the_split():
    a = RoarConfig(network="roarnet")
    b = RoarConfig(network="resnet8")
    c = RoarConfig(validation=0.2)
    hashes = {recipe_hash(x.recipe, x) for x in (a, b, c)}
    assert len(hashes) == 3
    with pytest.raises(ValueError, match="network"):
        RoarConfig(network="vgg")
    with pytest.raises(ValueError, match="replacement"):
        RoarConfig(replacement="zeros")
    with pytest.raises(ValueError, match="longer_reference"):
        RoarConfig(longer_reference=1)
    assert a.num_cells(["gradient", "random"]) == 3 * (2 * 5 + 1 + 3)
    assert RoarConfig(mask_only=True).num_cells(["gradient", "random"]) == 3 * (3 * 5 + 1 + 3)
    assert RoarNet(1, 10)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def _write_cifar(root, n: int) -> None:
    """A tiny CIFAR-10 folder in the documented python-batch format."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        batch = {
            "batch_label": name,
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [(i + j) % 10 for j in range(n)],
            "filenames": [f"{j}.png" for j in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": [f"c{k}" for k in range(10)], "num_cases_per_batch": n}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def test_paper_preset_runs_roar_on_cifar10_with_a_resnet8(tmp_path, monkeypatch, capsys):
    import dataclasses

    from prunegrad_lite.benchmarks.reproduce import PRESETS, reproduce

    _write_cifar(tmp_path / "data", n=12)
    monkeypatch.setenv("PRUNEGRAD_LITE_DATA", str(tmp_path / "data"))
    paper = PRESETS["paper"]
    assert paper.roar_network == "resnet8" and paper.roar_epochs == 50
    assert (paper.roar_optimizer, paper.roar_lr) == ("adam", 1e-3)  # the authors' recipe
    assert paper.roar_fractions == (0.1, 0.3, 0.5, 0.7, 0.9) and len(paper.roar_seeds) >= 3
    tiny = dataclasses.replace(
        paper,
        roar_fractions=(0.5,),
        roar_seeds=(0,),
        roar_epochs=1,
        explained_epochs=1,
        roar_methods=("gradient", "random"),
        roar_other_class=(),
        calibration_images=8,
        pixel_images=8,
        sanity_images=4,
    )
    report = reproduce(
        benchmarks="roar",
        models="cifar10_resnet8",
        preset=tiny,
        out=tmp_path / "run",
        device="cpu",
        progress=False,
    )
    result = report.results[("roar", "cifar10_resnet8")]
    assert result.settings["network"] == "resnet8" and len(result.settings["cells"]) == 4
    assert "ROAR (paper)" in capsys.readouterr().out  # the expected cost, before it starts
    assert list((tmp_path / "run" / "cache" / "models").glob("cifar10_resnet8_*.pt"))
    assert "**resnet8**" in report.summary_path.read_text()


def test_a_recipe_that_does_not_converge_stops_before_the_grid(tmp_path, monkeypatch):
    import importlib

    from prunegrad_lite.benchmarks.roar import RecipeNotConverged

    roar_cells = importlib.import_module("prunegrad_lite.benchmarks.roar_cells")  # retrains
    real_train = roar_cells.train_model
    trained = []

    def fake_accuracy(*args, **kw):  # the 3x longer run gains 5 points
        result = real_train(*args, **kw)
        trained.append(kw["model_fn"] if "model_fn" in kw else None)
        config = args[2]
        result.final_test_accuracy = 0.80 if config.epochs == RECIPE.epochs else 0.85
        return result

    monkeypatch.setattr(roar_cells, "train_model", fake_accuracy)
    train, test = quadrant_images(200, seed=7), quadrant_images(100, seed=8)
    config = RoarConfig(fractions=(0.25,), seeds=(0,), recipe=RECIPE, convergence_tolerance=0.015)
    with pytest.raises(RecipeNotConverged, match="gap 5.00 points"):
        roar(
            QuadrantModel().eval(),
            train,
            test,
            [QuadrantMap],
            config,
            cache_dir=tmp_path,
            device="cpu",
            progress=False,
            model_fn=linear_model,
        )
    assert len(trained) == 2  # the reference and its 3x longer run; no map, no grid cell
    assert not list((tmp_path / "maps").rglob("*.pt"))
    with pytest.raises(ValueError, match="convergence_tolerance"):
        RoarConfig(longer_reference=0, convergence_tolerance=0.015)


def test_locked_elsewhere_sees_another_process_holding_a_cell(tmp_path):
    import subprocess
    import sys
    import textwrap

    from prunegrad_lite.benchmarks.cache import load_json_cell, locked_elsewhere, store_json_cell

    path = tmp_path / "cell.json"
    assert not locked_elsewhere(path)  # no lock file yet
    holder = textwrap.dedent(
        f"""
        import sys
        from prunegrad_lite.benchmarks.cache import load_json_cell
        assert load_json_cell({str(path)!r}) is None   # takes the lock
        print("holding", flush=True)
        sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "holding"
        assert locked_elsewhere(path)
    finally:
        proc.communicate("\n", timeout=60)
    assert not locked_elsewhere(path)  # released when the holder exits
    assert load_json_cell(path) is None  # ours now: not "elsewhere"
    assert not locked_elsewhere(path)
    store_json_cell(path, {"value": 1})


def test_a_cell_taken_by_another_process_is_done_last_in_its_phase(tmp_path, monkeypatch):
    """Two processes on one cache folder share the work: a reference cell another process
    holds goes to the end of the references (never after the grid), and is read when it is
    free again."""
    import importlib

    roar_module = importlib.import_module("prunegrad_lite.benchmarks.roar")
    probes: list[str] = []

    def fake_locked(path) -> bool:  # seed 0's reference is "taken" on its first probe only
        probes.append(str(path))
        return "none/t0.0000_s0_" in str(path) and len(probes) == 1

    monkeypatch.setattr(roar_module, "locked_elsewhere", fake_locked)
    order: list[tuple[str, int]] = []
    train, test = quadrant_images(200, seed=7), quadrant_images(100, seed=8)
    config = RoarConfig(fractions=(0.25,), seeds=(0, 1), recipe=RECIPE, longer_reference=0)
    result = roar(
        QuadrantModel().eval(),
        train,
        test,
        [QuadrantMap],
        config,
        cache_dir=tmp_path,
        device="cpu",
        progress=False,
        model_fn=linear_model,
        on_cell=lambda record: order.append((record["method"], record["seed"])),
    )  # on_cell sees the order the cells were done in; the result lists them in grid order
    assert [(c["method"], c["seed"]) for c in result.settings["cells"]][:2] == [
        ("none", 0),
        ("none", 1),
    ]
    assert order[:2] == [("none", 1), ("none", 0)]  # deferred, but before any grid cell
    assert sorted(order[2:]) == [("quadrant", 0), ("quadrant", 1)]


def test_readme_roar_numbers_are_the_recorded_convergence_check():
    """The README's ROAR paragraph quotes the full preset's reference accuracies and their 3x
    longer runs as recorded in docs/results/roar_recipe_convergence.json (from the run's cache,
    ``perf/roar_recipe.py --collect``), and the recorded recipe is the full preset's."""
    import dataclasses
    import json
    import math
    import re
    from pathlib import Path

    from prunegrad_lite.benchmarks.reproduce import PRESETS, roar_config

    root = Path(__file__).resolve().parents[1]
    record = json.loads((root / "docs/results/roar_recipe_convergence.json").read_text())
    full = record["full_preset"]
    config = roar_config(PRESETS["full"], PRESETS["full"].roar_methods)
    assert full["recipe"] == dataclasses.asdict(config.recipe)
    assert full["recipe_hash"] == recipe_hash(config.recipe, config)
    readme = (root / "README.md").read_text()
    paragraph = re.search(r"\*\*ROAR\.\*\*(.*?)\n\n", readme, re.S).group(1)
    paragraph = " ".join(paragraph.split())  # line breaks do not matter
    base, longer = full["reference_accuracy"], full["reference_accuracy_3x_longer"]
    # the committed full run's reference cells are the recorded ones
    committed = json.loads((root / "docs/results/roar_fashion_mnist.json").read_text())
    assert committed["settings"]["reference_accuracy"] == pytest.approx(base)
    assert committed["settings"]["reference_accuracy_3x_longer"] == pytest.approx(longer)
    for value in [*base, *longer, sum(base) / len(base), sum(longer) / len(longer)]:
        assert f"{value:.4f}" in paragraph
    gap = 100 * (sum(longer) / len(longer) - sum(base) / len(base))
    assert 0 <= gap <= 1.5 and f"a gap of {gap:.1f} points" in paragraph
    se = math.sqrt(sum(base) / len(base) * (1 - sum(base) / len(base)) / 2000)
    assert f"standard error on the 2,000 test images is {se:.4f}" in paragraph
