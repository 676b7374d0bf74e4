"""Tests of the command line: `info`, a tiny `train`, and clear errors for bad arguments."""

from __future__ import annotations

import hashlib
import json

import pytest

from prunegrad_lite.cli import COMMANDS, main
from prunegrad_lite.models import load_model


def test_info_lists_versions_data_and_models(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "device:" in out
    assert "fashion_mnist_subset" in out and "fashion_resnet" in out
    for name in ("fashion_mnist", "efficientnet_lite0", "vgg16", "resnet50"):
        assert name in out


def test_train_tiny_writes_checkpoint_and_record(tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    argv = ["train", "--epochs", "1", "--limit", "256", "--width", "4", "--seed", "1",
            "--device", "cpu", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert record["num_train"] == 256 and record["config"]["epochs"] == 1
    assert record["command"].startswith("prunegrad-lite train --epochs 1")
    assert 0.0 <= record["accuracy"]["test_subset"] <= 1.0
    model = load_model("fashion_mnist", device="cpu", weights=out)  # width 4 from the metadata
    assert model.width == 4 and not model.training


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["train", "--epochs", "0"], 2, "must be a positive integer"),
        (["train", "--dataset", "mnist"], 2, "invalid choice"),
        (["train", "--device", "tpu", "--limit", "8"], 1, "unknown device"),
        (["frobnicate"], 2, "invalid choice"),
        ([], 2, "required"),
    ],
)
def test_bad_arguments_return_nonzero_with_a_message(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unwritable_out_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = ["train", "--epochs", "1", "--limit", "64", "--width", "2", "--device", "cpu",
            "--out", str(blocker / "m.pt"), "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "error:" in captured.err and "training" not in captured.out
    assert main(["train", "--out", str(tmp_path), "--device", "cpu"]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_commands_are_a_table():
    assert {"info", "train"} <= set(COMMANDS)
    assert all(callable(c.run) and callable(c.add_arguments) for c in COMMANDS.values())
