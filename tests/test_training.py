"""Tests of prunegrad_lite.training: augmentation, the recipe's reproducibility, checkpoints."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from prunegrad_lite.models import FashionResNet
from prunegrad_lite.training import (
    TrainConfig,
    augment_batch,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train_model,
)

TINY = TrainConfig(epochs=1, batch_size=64, width=4, seed=3)


def _synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable toy data: class 1 images are brighter (+1) than class 0 images (-1), plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)  # (N,)
    images = torch.randn(n, 1, 28, 28, generator=g)  # (N, 1, 28, 28)
    return images + (2.0 * labels.float() - 1.0)[:, None, None, None], labels


def test_augment_batch_crops_and_flips_each_sample():
    x = torch.randn(16, 2, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, padding=2, hflip=True, generator=g)
    assert out.shape == x.shape
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(len(x)):
        crops = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        candidates = crops + [c.flip(-1) for c in crops]
        assert any(torch.equal(out[i], c) for c in candidates)
    # the same seed draws the same augmentation; padding 0 without flips is the identity
    again = augment_batch(x, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(augment_batch(x, 0, False, g), x)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="num_workers"):
        TrainConfig(num_workers=2)


def test_train_one_epoch_is_reproducible_and_leaves_global_rng_alone():
    images, labels = _synthetic(512, seed=0)
    test = _synthetic(256, seed=1)
    rng_before = torch.get_rng_state()
    first = train_model((images, labels), test, TINY, device="cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before)
    second = train_model(TensorDataset(images, labels), test, TINY, device="cpu", progress=False)
    other = train_model(  # another seed, on 128 samples (2 steps) to keep the test fast
        (images[:128], labels[:128]), None, dataclasses.replace(TINY, seed=4), "cpu", False
    )
    assert not first.model.training
    assert len(first.history) == 1 and first.num_train == 512
    h = first.history[0]
    assert h.loss > 0 and 0 <= h.train_accuracy <= 1
    assert h.test_accuracy > 0.9  # it learns the toy task in 8 steps (chance is 0.5)
    assert first.test_accuracy == h.test_accuracy and other.test_accuracy is None
    s1, s2, s3 = (r.model.state_dict() for r in (first, second, other))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)  # same seed: identical weights
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)  # another seed: different
    assert json.dumps(first.as_dict())  # the record is JSON-able


def test_train_with_a_custom_model_fn():
    train = _synthetic(128, seed=0)
    result = train_model(
        train,
        config=TINY,
        device="cpu",
        progress=False,
        model_fn=lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)),
    )
    assert isinstance(result.model, torch.nn.Sequential)


def test_evaluate_restores_the_mode():
    model = FashionResNet(width=4).train()
    images, labels = _synthetic(40, seed=0)
    accuracy = evaluate(model, images, labels, batch_size=16)
    assert 0.0 <= accuracy <= 1.0 and model.training


def test_checkpoint_round_trip(tmp_path, monkeypatch):
    model = FashionResNet(width=4).eval()
    meta = {"accuracy": 0.5, "config": {"epochs": 1}, "classes": ["a", "b"], "shape": (1, 2)}
    path = save_checkpoint(model, tmp_path / "sub" / "model.pt", meta)
    assert path.is_file() and list(path.parent.iterdir()) == [path]
    calls = []
    real_load = torch.load
    monkeypatch.setattr(
        torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real_load(*a, **k)
    )
    checkpoint = load_checkpoint(path)
    assert calls == [True]
    assert checkpoint.meta == {**meta, "shape": [1, 2]}  # JSON types
    clone = FashionResNet(width=4)
    clone.load_state_dict(checkpoint.state_dict, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(clone.state_dict()[key], value)


def test_checkpoint_rejects_unjsonable_meta_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(FashionResNet(width=4), tmp_path / "m.pt", {"bad": object()})
    assert list(tmp_path.iterdir()) == []
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a prunegrad_lite checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(FashionResNet(width=4), path, {"version": 1})
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise OSError("disk full (test)")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(FashionResNet(width=4), path, {"version": 2})
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(FashionResNet(width=4), tmp_path / "new.pt", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp, no new.pt
    assert path.read_bytes() == before  # the old checkpoint is untouched
