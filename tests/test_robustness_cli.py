"""Issue 17, findings 4, 6 and 7: the command line ends every error with one readable line and a
non-zero status, shows the traceback only when asked, and checks ``--out`` before any work."""

from __future__ import annotations

import importlib

import pytest

from prunegrad_lite.cli import main
from prunegrad_lite.data import load_dataset

explain_module = importlib.import_module("prunegrad_lite.explain")


def _no_work(*args, **kwargs):
    raise AssertionError("work started although the request could not be honoured")


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    assert lines[-1].startswith("prunegrad-lite "), err
    return lines[-1]


def test_reproduce_with_a_text_file_as_weights_is_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a checkpoint\n")
    code = main(
        ["reproduce", "--weights", str(notes), "--benchmark", "pixel", "--model",
         "fashion_mnist", "--out", str(tmp_path / "out"), "--no-progress"]
    )  # fmt: skip
    assert code == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "notes.txt" in line and "checkpoint" in line


@pytest.mark.parametrize("error", [KeyError(101), ZeroDivisionError(), AssertionError("x")])
def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(
    error, monkeypatch, capsys, tmp_path
):
    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(explain_module, "explain_examples", boom)
    argv = ["explain", "--out", str(tmp_path / "m.png")]
    monkeypatch.delenv("PRUNEGRAD_LITE_DEBUG", raising=False)
    assert main(argv) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert type(error).__name__ in line and "--debug" in line
    assert main([*argv, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main(["--debug", *argv]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("PRUNEGRAD_LITE_DEBUG", "1")
    assert main(argv) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["folder_is_file", "out_is_folder", "unknown_format"])
def test_explain_checks_out_before_any_work(where, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(explain_module, "explain_examples", _no_work)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out = {
        "folder_is_file": blocker / "maps.png",
        "out_is_folder": tmp_path,
        "unknown_format": tmp_path / "maps.xyz",
    }[where]
    assert main(["explain", "--out", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "--out" in line


def test_reproduce_checks_out_before_any_work(tmp_path, monkeypatch, capsys):
    reproduce_module = importlib.import_module("prunegrad_lite.benchmarks.reproduce")
    monkeypatch.setattr(reproduce_module, "reproduce", _no_work)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    for out in (blocker, blocker / "run"):
        assert main(["reproduce", "--out", str(out)]) == 1
        assert "--out" in _one_error_line(capsys.readouterr().err)


def test_explain_refuses_photos_for_fashion_mnist_and_indices_for_efficientnet(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(explain_module, "load_model", _no_work)
    out = str(tmp_path / "m.png")
    assert main(["explain", "--photo", "cat", "--out", out]) == 1
    assert "--photo" in _one_error_line(capsys.readouterr().err)
    assert main(["explain", "--model", "efficientnet_lite0", "--index", "3", "--out", out]) == 1
    assert "--index" in _one_error_line(capsys.readouterr().err)
    assert main(["explain", "--methods", "gradient,gradcamm", "--out", out]) == 1
    assert "gradcamm" in _one_error_line(capsys.readouterr().err)
    assert main(["explain", "--sparsity", "1.5", "--out", out]) == 1
    assert "sparsity" in _one_error_line(capsys.readouterr().err)


def test_explain_out_without_extension_writes_and_names_the_png(tmp_path, capsys):
    out = tmp_path / "maps"
    code = main(["explain", "--index", "0", "--methods", "gradient", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "maps.png").is_file() and not out.exists()
    assert f"wrote {tmp_path / 'maps.png'}" in printed


@pytest.mark.parametrize("subset", [None, "no", 0, 1, "False"])
def test_load_dataset_subset_must_be_a_bool(subset):
    with pytest.raises(TypeError, match="subset"):
        load_dataset("fashion_mnist", split="test", subset=subset)
