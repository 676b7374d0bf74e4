"""The main job: ``prunegrad-lite explain`` writes a figure of maps for shipped-model predictions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from prunegrad_lite.cli import main  # noqa: E402
from prunegrad_lite.explain import explain_examples  # noqa: E402


def test_explain_examples_maps_every_method_for_the_predicted_class():
    result = explain_examples("fashion_mnist", indices=[0, 5], methods=("gradient", "prunegrad"))
    assert set(result.maps) == {"gradient", "prunegrad"}
    assert result.maps["prunegrad"].shape == (2, 1, 28, 28)
    assert result.explanation.target.tolist() == result.explanation.logits.argmax(1).tolist()
    # the figure's PruneGrad column is exactly the explanation's map
    assert (result.maps["prunegrad"] - result.explanation.attribution).abs().max() < 1e-6
    assert len(result.labels) == 2


def test_explain_command_writes_a_png(tmp_path, capsys):
    out = tmp_path / "maps.png"
    code = main(["explain", "--index", "3", "--methods", "gradient,prunegrad", "--out", str(out)])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "kept" in capsys.readouterr().out


def test_explain_command_rejects_a_bad_index(tmp_path, capsys):
    code = main(["explain", "--index", "99999", "--out", str(tmp_path / "x.png")])
    assert code != 0
    assert "--index" in capsys.readouterr().err
