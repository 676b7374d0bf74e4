"""Course modules of notebooks 05-08: the exercises' answers, the widgets' new controls and
labels, which run notebooks 07 and 08 show, and explaining your own photographs and model.

Each answer function asserts the claim of its answer; these tests run it on the shipped
Fashion-MNIST model (small and offline) and check that it fails when the claim is false.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from helpers import tiny_cnn

import prunegrad_lite as pgl
from prunegrad_lite.benchmarks.results import BenchmarkResult, Score

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def agg():
    """Draw off-screen; close what a test drew."""
    matplotlib.use("Agg")
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fashion():
    data = pgl.load_dataset("fashion_mnist", split="test")
    return pgl.load_model("fashion_mnist"), data


@pytest.fixture(scope="module")
def sanity(fashion):
    model, data = fashion
    methods = ["gradient", "guided_backprop", "prunegrad", "edge"]
    config = pgl.SanityConfig(depth=1, inits=("authors",), draws=1)
    return pgl.sanity_checks(model, data.images[:4], methods, config, progress=False)


def _result(benchmark: str, scores: dict[tuple[str, str], float], **settings) -> BenchmarkResult:
    methods = list(dict.fromkeys(m for m, _ in scores))
    rows = [Score(m, name, v, 0.0, 3, "lower") for (m, name), v in scores.items()]
    return BenchmarkResult(benchmark, "m", methods, [], rows, dict(settings))


# ------------------------------------------------------------------------------------- 05


def test_constant_map_answer(fashion, sanity):
    model, data = fashion
    answer = pgl.course.constant_map_answer(model, data.images[:4], sanity)
    assert math.isnan(answer.spearman_of_constant) and answer.counted_as == 0.0
    assert answer.gradient_at_top == pytest.approx(
        sanity.score("gradient", "spearman_abs@top").mean
    )
    assert set(answer.most_constant) == set(sanity.methods) and answer.maps_per_step == 4
    assert "undefined" in str(answer)
    bad = _result("sanity", {("gradient", "spearman_abs@top"): -0.1})
    with pytest.raises(AssertionError):
        pgl.course.constant_map_answer(model, data.images[:4], bad)


def test_fresh_noise_answer_tops_a_lower_is_better_ranking(fashion, sanity):
    model, data = fashion
    answer = pgl.course.fresh_noise_answer(model, data.images[:4], sanity)
    assert abs(answer.fresh_noise) < 0.1 and answer.seeded_noise == 1.0
    assert answer.fresh_noise < min(answer.methods_at_top.values())
    assert str(answer).splitlines()[1].lstrip().startswith("1. fresh noise")
    at_zero = _result("sanity", {("gradient", "spearman_abs@top"): -0.5})
    with pytest.raises(AssertionError, match="below fresh noise"):
        pgl.course.fresh_noise_answer(model, data.images[:4], at_zero)


def test_guided_backprop_answer(sanity):
    answer = pgl.course.guided_backprop_answer(sanity)
    assert answer.at_all < answer.at_top and answer.at_all < answer.edge_at_all
    assert answer.stages == len(sanity.settings["stages"])
    flat = _result(
        "sanity",
        {
            ("guided_backprop", "spearman_abs@top"): 0.9,
            ("guided_backprop", "spearman_abs@all"): 0.95,
            ("edge", "spearman_abs@all"): 1.0,
        },
    )
    with pytest.raises(AssertionError):
        pgl.course.guided_backprop_answer(flat)


def test_sanity_widget_writes_each_panels_similarity(fashion):
    model, data = fashion
    methods = ["gradient", "edge"]
    cascade = pgl.course.cascading_maps(model, data.images[:2], methods, depth=1)
    sims = pgl.course.panel_similarities(cascade, 0)
    np.testing.assert_allclose(sims["gradient"], 1.0)
    sims = pgl.course.panel_similarities(cascade, 2)
    np.testing.assert_allclose(sims["edge"], 1.0)  # the edge map ignores the weights
    w = pgl.course.build_sanity_widget(model, data.images[:2], data.mean, data.std, methods,
                                       depth=1)  # fmt: skip
    w.controls["stage"].value = 2
    labels = [ax.get_xlabel() for ax in w.figure.axes[:6]]
    assert labels[2] == f"ρ = {sims['edge'][0]:.2f}" and labels[1].startswith("ρ = ")
    assert "\n" in w.figure._suptitle.get_text()  # the title's second line keeps it apart


# ------------------------------------------------------------------------------------- 06


def test_mean_fill_answer_and_its_failure(fashion):
    model, data = fashion
    answer = pgl.course.mean_fill_answer(model, data.images[:8])
    assert answer.delta_x["grad_x_input"] < answer.delta_x["gradient"]
    assert answer.near_zero["grad_x_input"] > answer.near_zero["gradient"]
    blank = torch.zeros_like(data.images[:2])  # every pixel at the fill: nothing to favour
    with pytest.raises(AssertionError, match="as much"):
        pgl.course.mean_fill_answer(model, blank)


def test_perturbed_images_noisy_linear_and_input_change(fashion):
    model, data = fashion
    x = data.images[:3]
    maps = pgl.course.method_maps(model, x, ["gradient"]).maps
    mean = pgl.course.perturbed_images(model, x, maps, 0.1, "lerf")
    noisy = pgl.course.perturbed_images(model, x, maps, 0.1, "lerf", "noisy_linear")
    mask = noisy.masks["gradient"]  # (N, H, W)
    assert mask.shape == (3, 28, 28) and torch.equal(mask, mean.masks["gradient"])
    changed = (noisy.images["gradient"] != x).any(1)
    assert not (changed & ~mask).any()  # only removed pixels change
    assert noisy.replacement == "noisy_linear" and noisy.delta_x["gradient"].shape == (3,)
    assert (noisy.delta_x["gradient"] < mean.delta_x["gradient"]).all()


def test_replacement_answer(fashion):
    model, data = fashion
    answer = pgl.course.replacement_answer(model, data.images[:8])
    assert set(answer.delta_x) == {"mean", "blur", "noisy_linear"}
    assert answer.delta_x["noisy_linear"] < answer.delta_x["mean"]
    assert "noisy_linear" in str(answer)


def test_paired_lead_answer_is_the_paired_comparison(fashion):
    from prunegrad_lite.benchmarks.stats import paired_difference

    model, data = fashion
    x = data.images[:8]
    pixel = pgl.pixel_perturbation(
        model, x, ["prunegrad", "fullgrad"], pgl.PixelPerturbationConfig(fractions=(0.01, 0.1)),
        progress=False,
    )  # fmt: skip
    answer = pgl.course.paired_lead_answer(pixel)
    a = pixel.unit_values("prunegrad", "prob_change", "lerf", 0)
    b = pixel.unit_values("fullgrad", "prob_change", "lerf", 0)
    expected = paired_difference(a, b)
    assert answer.paired.difference == pytest.approx(expected.difference)
    assert (answer.paired.low, answer.paired.high) == pytest.approx((expected.low, expected.high))
    assert answer.verdict == expected.verdict("lower")
    assert answer.mean_a - answer.mean_b == pytest.approx(answer.paired.difference)
    with pytest.raises(ValueError, match="per-image"):
        pgl.course.paired_lead_answer(pixel, b="gradient")


def test_pixel_widget_switches_the_replacement_with_short_labels(fashion):
    model, data = fashion
    x = data.images[:2]
    w = pgl.course.build_pixel_perturbation_widget(model, x, data.mean, data.std, ["gradient"])
    assert [label for label, _ in w.controls["order"].options] == ["LeRF", "MoRF"]
    assert w.controls["order"].tooltips  # the long names are tooltips, not cut-off labels
    assert [v for _, v in w.controls["replacement"].options] == ["mean", "blur", "noisy_linear"]
    png = w.image.value
    w.controls["replacement"].value = "noisy_linear"
    assert w.result.replacement == "noisy_linear" and w.image.value != png
    assert "noisy linear" in w.figure._suptitle.get_text()
    assert "|Δx|" in w.figure.axes[1].get_xlabel()


def test_paper_numbers_name_their_source():
    for benchmark in ("pixel", "roar", "sanity"):
        text = pgl.course.paper_numbers(benchmark)
        assert "CVPR 2021" in text and "not arXiv 1911.11081" in text
    assert "| prunegrad | 74 | 68 | 65 | 58 | 44 |" in pgl.course.paper_numbers("roar")
    with pytest.raises(ValueError):
        pgl.course.paper_numbers("roar_leak")


# ------------------------------------------------------------------------------------- 07


def test_course_results_show_the_committed_run_by_default(monkeypatch, tmp_path):
    from prunegrad_lite.course import n07_roar

    assert (ROOT / "notebooks" / pgl.course.COMMITTED_RESULTS).resolve() == ROOT / "docs/results"
    pixel = BenchmarkResult("pixel", "fashion_mnist", ["gradient"], [], [], {})
    pixel.save(tmp_path, figure=False)
    run = {"preset": {"name": "full"}, "seed": 0, "device": "cpu", "torch_version": "2.x",
           "seconds": {"total": 600}, "sparsity": {"fashion_mnist": 0.93}}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(run))
    monkeypatch.delenv("PRUNEGRAD_LITE_SMOKE", raising=False)
    monkeypatch.setattr(n07_roar, "COMMITTED_RESULTS", str(tmp_path))
    course = pgl.course.course_results(["pixel"], full_run=tmp_path)
    assert course.sparsity == 0.93 and course.run == run and course.preset is None
    assert str(tmp_path) in course.source and "preset 'full'" in course.source
    assert "10 min" in course.source
    import inspect

    default = inspect.signature(pgl.course.course_results).parameters["full_run"].default
    assert default == "../docs/results"


def test_describe_roar_preset_reads_the_preset():
    full = pgl.benchmarks.PRESETS["full"]
    text = pgl.course.describe_roar_preset(full)
    fractions = ", ".join(f"{100 * f:g}%" for f in full.roar_fractions)
    assert f"fractions  {fractions}" in text
    assert all(m in text for m in full.roar_methods)


def test_retrainings_answer_counts_what_roar_trains():
    for name, preset in pgl.benchmarks.PRESETS.items():
        answer = pgl.course.retrainings_answer(preset)
        assert sum(answer.terms.values()) == answer.total, name
    assert pgl.course.retrainings_answer(pgl.course.COURSE_PRESET).total == 32


def test_roar_findings_read_the_result():
    result = _result(
        "roar",
        {
            ("gradient", "acc@10%"): 0.8,
            ("random", "acc@10%"): 0.7,
            ("gradient", "mask_only@10%"): 0.6,
        },
        fractions=[0.1],
        seeds=[0, 1],
        chance=0.1,
        reference_accuracy=[0.9, 0.92],
    )
    text = pgl.course.roar_findings(result)
    assert "reference accuracy (nothing removed) 91.0%" in text
    assert "from lowest: random 70.0%, gradient 80.0%" in text
    assert "mask-only accuracy (chance 10%): gradient 60.0%" in text


def test_mask_leak_answer(fashion):
    model, data = fashion
    train = pgl.load_dataset("fashion_mnist", split="train")
    roar = _result("roar", {("gradient", "mask_only@50%"): 0.8})
    answer = pgl.course.mask_leak_answer(
        model, (train.images[:200], train.labels[:200]), (data.images[:100], data.labels[:100]),
        roar=roar,
    )  # fmt: skip
    assert answer.chance == pytest.approx(0.1)
    assert answer.accuracy["gradient"] > answer.chance + 0.1 > answer.accuracy["random"]
    assert answer.run_mask_only == {"gradient": 0.8} and "80.0%" in str(answer)


def test_roar_widget_shows_the_removal_masks():
    model = tiny_cnn("inplace", bn=True, seed=2)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    fill = x.mean(dim=(0, 2, 3))
    w = pgl.course.build_roar_widget(model, x, fill, (0.5,) * 3, (0.25,) * 3, ["gradient"])
    for fraction in (0.5, 0.9):
        w.controls["fraction"].value = fraction
        mask = w.result.masks["gradient"]  # (N, H, W): where ROAR replaced a pixel
        replaced = (w.result.images["gradient"] != x).any(1)
        assert not (replaced & ~mask).any()
        assert (mask.flatten(1).sum(1) == round(fraction * 64)).all()
    assert len(w.figure.axes) == 2 * 2 * 2  # two rows per image: ROAR's and the mask-only input
    assert "mask-only" in w.figure._suptitle.get_text()


# ------------------------------------------------------------------------------------- 08


def test_claim_counts_count_every_checked_claim(fashion):
    model, data = fashion
    pixel = pgl.pixel_perturbation(
        model, data.images[:6], ["gradient", "prunegrad"],
        pgl.PixelPerturbationConfig(fractions=(0.01, 0.1)), progress=False,
    )  # fmt: skip
    table = pgl.course.claim_counts({"pixel": pixel})
    row = [r for r in table.splitlines() if r.startswith("| pixel")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    from prunegrad_lite.benchmarks.paper import check_claims

    assert int(cells[1]) == 4 and sum(int(c) for c in cells[2:]) == len(
        check_claims({"pixel": pixel})
    )


def test_load_my_photos_reads_a_folder_or_falls_back(tmp_path):
    from PIL import Image

    folder = tmp_path / "my_images"
    photos = pgl.course.load_my_photos(folder, size=64)
    assert folder.is_dir() and photos.names == ["coffee"] and "no photograph" in photos.source
    assert photos.images.shape == (1, 3, 64, 64)
    assert 0.0 <= float(photos.display.min()) and float(photos.display.max()) <= 1.0
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(folder / "b.png")
    Image.fromarray(np.full((30, 30), 10, np.uint8)).save(folder / "a.jpg")  # grey level
    (folder / "c.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("ignored")
    photos = pgl.course.load_my_photos(folder, size=32)
    assert photos.names == ["a.jpg", "b.png"] and photos.images.shape == (2, 3, 32, 32)
    assert "could not read: c.jpg" in photos.source


def test_explain_images_takes_any_module():
    model = tiny_cnn("inplace", bn=True, seed=2)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    shown = (x - x.min()) / (x.max() - x.min())
    out = pgl.course.explain_images(model, x, shown, ["a", "b", "c", "d"],
                                    method_options={"prunegrad": {"sparsity": 0.5}})  # fmt: skip
    torch.testing.assert_close(out.maps["gradient"], pgl.Gradient(model).attribute(x))
    assert len(out.labels) == 2 and out.labels[0].split(" (p=")[0] in "abcd"
    plt.close(out.figure)


def test_second_class_answer(fashion):
    model, data = fashion
    answer = pgl.course.second_class_answer(model, data.images[:1], data.classes)
    assert answer.kept_both < 1.0 and answer.map_similarity < 1.0
    assert answer.classes[0].startswith(data.classes[int(model(data.images[:1]).argmax())])


def test_sparsity_answer(fashion):
    model, data = fashion
    x = data.images[:16]
    cal = pgl.calibrate_sparsity(model, x)
    answer = pgl.course.sparsity_answer(model, x, cal.sparsity, 0.3)
    assert abs(answer.change_calibrated - 0.15) <= abs(answer.change_other - 0.15) + 0.02
    with pytest.raises(AssertionError, match="fits this model better"):
        pgl.course.sparsity_answer(model, x, 0.3, cal.sparsity)
