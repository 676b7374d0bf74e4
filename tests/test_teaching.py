"""The course's pure functions (shared, per notebook) against oracles, and its figures."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from helpers import TinyFunctionalNet, hook_count, tiny_cnn
from matplotlib.figure import Figure

import prunegrad_lite as pgl
from prunegrad_lite import runtime


pytestmark = pytest.mark.usefixtures("agg")  # tests/conftest.py: off-screen, figures closed


@pytest.fixture
def cnn() -> torch.nn.Module:
    return tiny_cnn("reused", bn=True, seed=0, dtype=torch.float64)


@pytest.fixture
def cnn32() -> torch.nn.Module:
    """float32, as the benchmarks compute (they cast images to float32)."""
    return tiny_cnn("reused", bn=True, seed=0)


@pytest.fixture
def x32(x) -> torch.Tensor:
    return x.float()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# ----------------------------------------------------------------------------- the namespace


def test_course_helpers_live_in_pgl_course_only():
    """``pgl`` is the library; the course is ``pgl.course``, one module per notebook."""
    leaked = sorted(set(pgl.course.__all__) & set(dir(pgl)))
    assert not leaked, f"course helpers in the top-level namespace: {leaked}"
    maintenance = {"register", "read_idx", "build_fashion_mnist_subset"}
    assert not maintenance & set(dir(pgl)), "maintenance tools belong to their own modules"
    assert all(hasattr(pgl.course, name) for name in pgl.course.__all__)
    notebooks = sorted(p.stem for p in (Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 9
    missing = [
        nb for nb in notebooks if not isinstance(getattr(pgl.course, f"n{nb}", None), ModuleType)
    ]
    assert not missing, f"no module pgl.course.n<notebook> for {missing}"
    for nb in notebooks:  # each module says which notebook uses it
        assert f"notebooks/{nb}.ipynb" in getattr(pgl.course, f"n{nb}").__doc__, nb


# ----------------------------------------------------------------------------- shared


@pytest.mark.parametrize(
    ("value", "smoke"),
    [(None, False), ("", False), ("0", False), ("true", False), ("1", True), (" 1 ", True)],
)
def test_smoke_mode_and_pick_follow_the_environment_variable(monkeypatch, value, smoke):
    if value is None:
        monkeypatch.delenv(runtime.SMOKE_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(runtime.SMOKE_ENV_VAR, value)
    assert runtime.smoke_mode() is smoke
    assert pgl.course.pick("normal", "smoke") == ("smoke" if smoke else "normal")


def test_environment_reports_device_and_weights(monkeypatch):
    monkeypatch.setenv(runtime.SMOKE_ENV_VAR, "1")
    env = pgl.course.environment("cpu", models=("efficientnet_lite0",))
    assert env.device == torch.device("cpu") and env.smoke
    assert set(env.weights) == {"efficientnet_lite0"}
    text = str(env)
    assert "device" in text and "cpu" in text and "smoke mode" in text


def test_markdown_wraps_text_for_display():
    shown = pgl.course.markdown("| a |\n|---|")
    assert shown.data == "| a |\n|---|" and shown._repr_markdown_() == shown.data


def test_prediction_labels_name_the_argmax_with_its_probability(cnn, x):
    names = ["a", "b", "c", "d"]
    labels = pgl.course.prediction_labels(cnn, x, names, batch_size=2)
    with torch.no_grad():
        probs = cnn(x).softmax(-1)
    for label, p in zip(labels, probs):
        assert label == f"{names[int(p.argmax())]} (p={float(p.max()):.2f})"


# ----------------------------------------------------------------------------- neurons


def test_taylor_parts_by_hand():
    """a = relu(W1 x + b1), dS_c/da = W2[c]: the hand-computable network of the oracle tests."""
    net = TinyFunctionalNet().double().eval()
    x = torch.tensor([[1.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    parts = pgl.course.taylor_parts(net, x, target=[0, 1])
    w1, b1 = net.fc1.weight.detach(), net.fc1.bias.detach()
    w2 = net.fc2.weight.detach()
    a = torch.relu(x @ w1.T + b1)
    torch.testing.assert_close(parts.activations[0], a)
    torch.testing.assert_close(parts.gradients[0], w2[[0, 1]])
    torch.testing.assert_close(parts.scores[0], (a * w2[[0, 1]]).abs())
    assert parts.target.tolist() == [0, 1]


def test_taylor_scores_are_neuron_scores_and_leave_the_model_alone(cnn, x):
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    parts = pgl.course.taylor_parts(cnn, x)
    reference = pgl.neuron_scores(cnn, x)
    assert [s.name for s in parts.sites] == [s.name for s in reference.sites]
    assert len(parts.sites) == 2  # one nn.ReLU module called twice: two sites
    for mine, theirs in zip(parts.scores, reference.scores):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)
    assert all((a >= 0).all() for a in parts.activations)
    assert hook_count(cnn) == 0 and not cnn.training
    for k, v in cnn.state_dict().items():
        assert torch.equal(v, before[k])


def test_layer_score_stats_by_hand():
    net = TinyFunctionalNet().double().eval()
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)  # a = relu([3, 0.5, -3]) = [3, 0.5, 0]
    (row,) = pgl.course.layer_score_stats(pgl.course.taylor_parts(net, x, target=0))
    # dS_0/da = W2[0] = [1, -2, 1]: scores [3, 1, 0]
    assert row.neurons == 3 and row.shape == (3,)
    assert row.inactive == pytest.approx(1 / 3) and row.zero_score == pytest.approx(1 / 3)
    assert row.mean_score == pytest.approx(4 / 3) and row.max_score == pytest.approx(3.0)
    assert row.share == pytest.approx(1.0)


def test_layer_score_stats_shares_sum_to_one_and_table_has_a_row_per_site(cnn, x):
    parts = pgl.course.taylor_parts(cnn, x)
    stats = pgl.course.layer_score_stats(parts)
    assert sum(s.share for s in stats) == pytest.approx(1.0)
    for s, a in zip(stats, parts.activations):
        assert s.inactive == pytest.approx((a == 0).double().mean().item())
        assert s.zero_score >= s.inactive - 1e-12  # every inactive neuron scores 0
    for s, a in zip(stats, parts.activations):
        assert s.never_active == pytest.approx((a == 0).all(0).double().mean().item())
        assert s.never_active <= s.inactive + 1e-12
    table = pgl.course.format_layer_stats(stats)
    assert len(table.splitlines()) == len(stats) + 1


def test_top_channels_sorts_channels_by_their_summed_score():
    values = torch.zeros(2, 4, 3, 3)
    values[1, 2] = 5.0
    values[1, 0, 0, 0] = 7.0
    values[1, 3] = 0.5
    channels, maps = pgl.course.top_channels(values, sample=1, k=3)
    assert channels == [2, 0, 3]
    assert maps.shape == (3, 3, 3) and torch.equal(maps[0], values[1, 2])
    fc_channels, fc_maps = pgl.course.top_channels(torch.tensor([[0.0, 2.0, 1.0]]), k=5)
    assert fc_channels == [1, 2, 0] and fc_maps.shape == (3, 1, 1)


# ----------------------------------------------------------------------------- pruning


def test_pruning_sweep_matches_prunegrad_explain(cnn, x):
    levels = [0.0, 0.5, 0.9]
    sweep = pgl.course.pruning_sweep(cnn, x, levels)
    np.testing.assert_allclose(sweep.pruned_prob[0], sweep.prob, rtol=1e-12)
    assert (sweep.kept_fraction[0] == 1).all() and sweep.same_prediction[0].all()
    for i, s in enumerate(levels[1:], start=1):
        ex = pgl.PruneGrad(cnn, sparsity=s).explain(x)
        np.testing.assert_allclose(sweep.pruned_prob[i], ex.pruned_prob.numpy(), rtol=1e-10)
        np.testing.assert_allclose(sweep.kept_per_site[i], ex.kept_per_site.numpy())
        np.testing.assert_allclose(sweep.change[i], ex.prob_change.numpy(), rtol=1e-8)
        assert sweep.mean_change[i] == pytest.approx(ex.prob_change.mean().item())
        same = ex.pruned_logits.argmax(1) == ex.target
        assert (sweep.same_prediction[i] == same.numpy()).all()


def test_format_pruning_sweeps_has_a_row_per_sparsity(cnn, x):
    sweeps = [
        pgl.course.pruning_sweep(cnn, x, [0.0, 0.5, 0.9]),
        pgl.course.pruning_sweep(cnn, x, [0.0, 0.5, 0.9], scoring="random"),
    ]
    lines = pgl.course.format_pruning_sweeps(sweeps).splitlines()
    assert len(lines) == 2 + 3
    assert "taylor, global" in lines[0] and "random, global" in lines[0]
    assert lines[2].split()[0] == "0.00" and "100.0%" in lines[2]


def test_random_pruning_sweep_is_seeded_and_keeps_one_minus_sparsity(cnn, x):
    a = pgl.course.pruning_sweep(cnn, x, [0.3, 0.8], scoring="random", seed=3)
    b = pgl.course.pruning_sweep(cnn, x, [0.3, 0.8], scoring="random", seed=3)
    np.testing.assert_array_equal(a.pruned_prob, b.pruned_prob)
    # random scores never tie, so the kept fraction is 1 - sparsity up to one neuron
    total = sum(site.numel for site in a.sites)
    np.testing.assert_allclose(a.kept_fraction, [[0.7] * 5, [0.2] * 5], atol=1.5 / total)


# ----------------------------------------------------------------------------- perturbation


def test_sparsity_maps_equal_prunegrad_and_gradient(cnn, x):
    sweep = pgl.course.sparsity_maps(cnn, x, [0.0, 0.6, 0.95])
    torch.testing.assert_close(sweep.maps[0.0], pgl.Gradient(cnn).attribute(x))
    for s in (0.6, 0.95):
        ex = pgl.PruneGrad(cnn, sparsity=s).explain(x)
        torch.testing.assert_close(sweep.maps[s], ex.attribution)
        np.testing.assert_allclose(sweep.kept_fraction[s], ex.kept_fraction.numpy())
        np.testing.assert_allclose(sweep.change(s), ex.prob_change.numpy(), rtol=1e-8)


def test_prunegrad_is_the_steepest_ascent_of_the_pruned_network(cnn, x):
    """To first order, epsilon * PruneGrad/||PruneGrad|| raises S_c^pruned by epsilon ||PruneGrad||,
    and no other direction of the same norm raises it more."""
    eps = 1e-6
    gains = pgl.course.perturbation_gains(cnn, x, 0.7, [eps], steps=3)
    pg = pgl.PruneGrad(cnn, sparsity=0.7).attribute(x)
    expected = eps * pg.flatten(1).norm(dim=1).numpy()
    np.testing.assert_allclose(gains.gains["prunegrad"][0], expected, rtol=1e-4)
    for name in ("gradient", "random", "iterative"):
        assert (gains.gains[name][0] <= gains.gains["prunegrad"][0] * (1 + 1e-4)).all(), name
    assert gains.gains["prunegrad"].shape == (1, 5) and set(gains.gains) == set(
        pgl.course.DIRECTIONS
    )


def test_iterative_perturbation_gains_at_least_the_one_step_at_large_epsilon(cnn, x):
    gains = pgl.course.perturbation_gains(cnn, x, 0.7, [0.5, 4.0], steps=8)
    assert gains.gains["iterative"][-1].mean() >= gains.gains["prunegrad"][-1].mean() - 1e-9
    assert (gains.gains["prunegrad"][-1] > gains.gains["random"][-1]).mean() >= 0.8
    with pytest.raises(ValueError, match="epsilons"):
        pgl.course.perturbation_gains(cnn, x, 0.7, [0.0])


# ----------------------------------------------------------------------------- comparison


def test_compute_maps_explains_one_target_with_each_method(cnn, x):
    run = pgl.course.method_maps(
        cnn,
        x,
        ["gradient", "integrated_gradients", "prunegrad"],
        {"integrated_gradients": {"steps": 4}, "prunegrad": {"sparsity": 0.8}},
    )
    assert list(run.maps) == ["gradient", "integrated_gradients", "prunegrad"]
    assert all(m.shape == x.shape for m in run.maps.values())
    assert torch.equal(run.target, cnn(x).argmax(1))
    torch.testing.assert_close(
        run.maps["integrated_gradients"], pgl.IntegratedGradients(cnn, steps=4).attribute(x)
    )
    torch.testing.assert_close(run.maps["prunegrad"], pgl.PruneGrad(cnn, sparsity=0.8).attribute(x))
    assert all(s >= 0 for s in run.seconds.values())
    assert len(pgl.course.format_timings(run).splitlines()) == 4
    with pytest.raises(ValueError, match="not asked for"):
        pgl.course.method_maps(cnn, x, ["gradient"], {"prunegrad": {}})


def test_describe_methods_has_a_line_for_every_method_with_its_defaults():
    lines = pgl.course.describe_methods().splitlines()
    assert [line.split()[0] for line in lines] == list(pgl.METHODS)
    text = dict(line.split(maxsplit=1) for line in lines)
    assert "50" in text["integrated_gradients"]  # the default steps are stated
    assert "PruneGrad" in text["prunegrad"] and "'scoring': 'random'" in text["prunegrad_random"]


# ----------------------------------------------------------------------------- figures


def _check(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    assert fig._suptitle is not None or any(ax.get_title() for ax in fig.axes)
    plt.close(fig)


def test_lesson_figures_draw_titled_figures(cnn, x):
    images = torch.rand(5, 3, 8, 8)
    parts = pgl.course.taylor_parts(cnn, x)
    _check(pgl.course.plot_examples(images, list("abcde"), ncols=3))
    fig = pgl.course.plot_taylor_parts(parts, images[0], site=1, channel=2)
    assert [ax.get_xlabel() for ax in fig.axes[1:4]] == ["x (positions)"] * 3
    assert len(fig.axes) == 7  # image, three panels and their three colour bars
    _check(fig)
    channels, maps = pgl.course.top_channels(parts.scores[0], k=3)
    _check(pgl.course.plot_channel_scores(channels, maps, images[0], parts.sites[0].name))
    _check(pgl.course.plot_layer_scores(parts))
    taylor = pgl.course.pruning_sweep(cnn, x, [0.0, 0.5, 0.9])
    random = pgl.course.pruning_sweep(cnn, x, [0.0, 0.5, 0.9], scoring="random")
    fig = pgl.course.plot_kept_per_site([taylor, random], level=2)
    assert len(fig.axes[0].get_legend().get_texts()) == 3  # two sweeps and 1 - sparsity
    _check(fig)
    _check(pgl.course.plot_kept_per_site(taylor, level=1, sample=0))
    fig = pgl.course.plot_pruning_sweep([taylor, random])
    assert fig.axes[0].get_xlabel() == "sparsity (fraction of neurons pruned)"
    _check(fig)
    _check(
        pgl.course.plot_perturbation_gains(
            pgl.course.perturbation_gains(cnn, x, 0.7, [0.1, 1.0], steps=2)
        )
    )
    with pytest.raises(ValueError, match="labels"):
        pgl.course.plot_examples(images, ["a"])


def test_clip_maps_clips_each_sample_and_keeps_keys():
    batch = torch.zeros(2, 1, 10, 10)
    batch[0, 0, 0, 0] = 100.0  # one extreme pixel
    batch[0, 0, 1:] = -1.0
    batch[1] = 5.0
    clipped = pgl.course.clip_maps({"a": batch, 0.9: batch[0]}, q=50)
    assert list(clipped) == ["a", 0.9]
    torch.testing.assert_close(clipped["a"], pgl.clip_percentile(batch, 50))
    assert clipped["a"][0].max() == 1.0 and clipped["a"][0].min() == -1.0  # p = 1 for sample 0
    torch.testing.assert_close(clipped["a"][1], batch[1])  # a constant map is unchanged
    torch.testing.assert_close(clipped[0.9], clipped["a"][0])  # a single (C, H, W) map


# ----------------------------------------------------------------------------- benchmark lessons


def test_cascading_maps_are_the_sanity_checks_maps(cnn32, x32):
    from prunegrad_lite.benchmarks.sanity import randomisation_stages

    methods = ["gradient", "guided_backprop"]
    before = {k: v.clone() for k, v in cnn32.state_dict().items()}
    cascade = pgl.course.cascading_maps(cnn32, x32[:2], methods, seed=3)
    stages = randomisation_stages(cnn32, x32[:1])
    assert cascade.stages == ["original", *(s.name for s in stages)]
    assert len(cascade.maps) == len(stages) + 1
    torch.testing.assert_close(cascade.maps[0]["gradient"], pgl.Gradient(cnn32).attribute(x32[:2]))
    result = pgl.sanity_checks(
        cnn32, x32[:2], methods,
        pgl.SanityConfig(variants=("cascading",), measures=("spearman_abs",), example_images=2),
        seed=3, progress=False,
    )  # fmt: skip
    for column, maps in result.examples["maps"].items():  # (k, M, C, H, W) per shown stage
        if column == "original":
            continue
        step = cascade.stages.index(column.removeprefix("→ "))
        for j, name in enumerate(methods):
            torch.testing.assert_close(cascade.maps[step][name].float(), maps[:, j].float())
    for k, v in cnn32.state_dict().items():
        assert torch.equal(v, before[k])  # the caller's model is untouched


def test_perturbed_images_match_the_pixel_perturbation_benchmark(cnn32, x32):
    from prunegrad_lite.benchmarks.pixel_perturbation import perturbation_curves

    maps = pgl.course.method_maps(cnn32, x32, ["gradient", "edge"]).maps
    target = cnn32(x32).argmax(1)
    for order in ("lerf", "morf"):
        out = pgl.course.perturbed_images(cnn32, x32, maps, 0.25, order, seed=2)
        assert out.order == order and out.fraction == 0.25
        for name, m in maps.items():
            changed = (out.images[name] != x32).any(1)  # (N, H, W) pixels replaced
            assert (changed.flatten(1).sum(1) <= 16).all()  # round(0.25 * 64) pixels at most
            assert (out.images[name][changed.unsqueeze(1).expand_as(x32)] == 0).all()  # "mean"
            config = pgl.PixelPerturbationConfig(fractions=(0.25,), orders=(order,))
            curve = perturbation_curves(
                cnn32, x32, m, target, config, generator=torch.Generator().manual_seed(2)
            )  # (1, 1, N)
            np.testing.assert_allclose(out.change[name], curve[0, 0].double(), atol=1e-6)


def test_roar_images_replace_the_top_pixels_by_the_fill(cnn32, x32):
    maps = {"gradient": pgl.Gradient(cnn32).attribute(x32)}
    fill = torch.tensor([0.5, -1.0, 2.0])
    out = pgl.course.roar_images(cnn32, x32, maps, 0.5, fill)
    replaced = (out.images["gradient"] != x32).any(1)  # (N, H, W)
    assert (replaced.flatten(1).sum(1) == 32).all()  # round(0.5 * 64), all channels together
    values = out.images["gradient"].permute(0, 2, 3, 1)[replaced]  # (K, C)
    assert (values == fill).all()
    top = pgl.reduce_channels(maps["gradient"]).flatten(1).argmax(1)  # most important pixel
    assert replaced.flatten(1).gather(1, top.view(-1, 1)).all()
    assert out.order == "roar" and out.change["gradient"].shape == (5,)


def test_course_results_prefer_a_full_run_and_size_the_run_by_smoke_mode(
    cnn32, x32, tmp_path, monkeypatch
):
    from prunegrad_lite.benchmarks.reproduce import PRESETS
    from prunegrad_lite.course import n07_roar

    result = pgl.pixel_perturbation(
        cnn32, x32, ["gradient"], pgl.PixelPerturbationConfig(fractions=(0.1,)),
        progress=False, model_name="fashion_mnist",
    )  # fmt: skip
    result.save(tmp_path, figure=False)
    (tmp_path / "run.json").write_text('{"preset": {"name": "full"}}')
    monkeypatch.delenv("PRUNEGRAD_LITE_SMOKE", raising=False)
    loaded = pgl.course.course_results(["pixel"], full_run=tmp_path)
    assert loaded.source.startswith("a full") and loaded.sparsity is None
    assert loaded.results["pixel"].scores == result.scores

    calls = []

    def fake_reproduce(**kwargs):
        calls.append(kwargs)
        return type("Report", (), {"results": {}, "sparsity": {"fashion_mnist": 0.8}})()

    monkeypatch.setattr(n07_roar, "reproduce", fake_reproduce)
    (tmp_path / "run.json").write_text('{"preset": {"name": "quick"}}')  # not a full run
    course = pgl.course.course_results(["pixel", "roar"], full_run=tmp_path, out=tmp_path / "c")
    assert calls[-1]["preset"] is pgl.course.COURSE_PRESET and course.sparsity == 0.8
    assert calls[-1]["benchmarks"] == ["pixel", "roar"] and "course" in course.source
    monkeypatch.setenv("PRUNEGRAD_LITE_SMOKE", "1")
    (tmp_path / "run.json").write_text('{"preset": {"name": "full"}}')
    pgl.course.course_results(["pixel"], full_run=tmp_path)  # smoke mode never reads a full run
    assert calls[-1]["preset"] is PRESETS["smoke"] and len(calls) == 2


def test_benchmark_lesson_figures(cnn32, x32):
    images = torch.rand(2, 3, 8, 8)
    fig = pgl.course.plot_removed_pixels(
        images, {"a": images * 0, "b": images}, {"a": np.array([0.1, 0.2]), "b": np.zeros(2)}
    )
    assert len(fig.axes) == 6 and fig.axes[1].get_xlabel().startswith("|p - p'| / p = 0.1")
    _check(fig)
    result = pgl.pixel_perturbation(
        cnn32, x32, ["gradient", "random"],
        pgl.PixelPerturbationConfig(fractions=(0.1, 0.2)), progress=False,
    )  # fmt: skip
    fig = pgl.course.plot_scores(result, "lerf_auc")
    assert "lower is better" in fig.axes[0].get_title()
    _check(fig)
    with pytest.raises(ValueError, match="no score"):
        pgl.course.plot_scores(result, "nothing")
