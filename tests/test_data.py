"""Tests of prunegrad_lite.data: registry, Fashion-MNIST, CIFAR-10, folders, photos, names."""

from __future__ import annotations

import doctest
import gzip
import hashlib
import importlib.util
import pickle
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prunegrad_lite import data as D
from prunegrad_lite.data import registry

ROOT = Path(__file__).resolve().parent.parent


def _subset_builder():
    """``scripts/build_fashion_mnist_subset.py``: a maintenance script, not part of the package."""
    path = ROOT / "scripts" / "build_fashion_mnist_subset.py"
    spec = importlib.util.spec_from_file_location("build_fashion_mnist_subset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HAS_DEBIAN = all(
    (D.DEBIAN_FASHION_MNIST_DIR / f"{p}-{k}.gz").is_file()
    for p in ("train", "t10k")
    for k in ("images-idx3-ubyte", "labels-idx1-ubyte")
)
needs_debian = pytest.mark.skipif(not HAS_DEBIAN, reason="apt package dataset-fashion-mnist absent")
SUBSET = D.REPO_DATA_DIR / "fashion_mnist_subset.npz"


def _offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


# ---------------------------------------------------------------------------- registry
def test_unknown_name_lists_known_names():
    with pytest.raises(D.DataError, match="unknown data file 'nope'.*fashion_mnist_subset"):
        D.fetch("nope")


@needs_debian
def test_fetch_falls_back_to_the_debian_folder(empty_data_root):
    path = D.fetch("fashion_mnist/t10k-labels-idx1-ubyte")
    assert path == D.DEBIAN_FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz"


def test_shipped_subset_matches_registry():
    entry = D.REGISTRY["fashion_mnist_subset"]
    assert hashlib.sha256(SUBSET.read_bytes()).hexdigest() == entry.sha256
    assert SUBSET.stat().st_size < 10 * 2**20
    assert D.fetch("fashion_mnist_subset", root=D.REPO_DATA_DIR) == SUBSET


def test_data_root_env_var_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEGRAD_LITE_DATA", str(tmp_path))
    assert D.data_root() == tmp_path
    monkeypatch.delenv("PRUNEGRAD_LITE_DATA")
    assert D.data_root() == D.REPO_DATA_DIR


def test_corrupt_file_reports_both_hashes(empty_data_root):
    corrupt = empty_data_root / "fashion_mnist_subset.npz"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(D.DataError, match="sha256 mismatch") as err:
        D.load_dataset("fashion_mnist")
    assert D.REGISTRY["fashion_mnist_subset"].sha256 in str(err.value)
    assert hashlib.sha256(b"garbage").hexdigest() in str(err.value)


def test_missing_file_names_the_path(empty_data_root):
    with pytest.raises(D.DataError, match="missing") as err:
        D.fetch("fashion_mnist_subset")
    assert str(empty_data_root / "fashion_mnist_subset.npz") in str(err.value)
    assert "git checkout" in str(err.value)


def test_offline_download_says_no_network(empty_data_root, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(D.DataError, match="no network") as err:
        D.fetch("fashion_mnist/t10k-labels-idx1-ubyte", root=empty_data_root, download=True)
    assert "PRUNEGRAD_LITE_DATA" in str(err.value)
    assert [p for p in empty_data_root.rglob("*") if p.is_file()] == []  # nothing half-written
    with pytest.raises(D.DataError, match="no network"):
        D.load_dataset("fashion_mnist", "test", subset=False, root=empty_data_root, download=True)


def test_download_is_verified_and_atomic(empty_data_root, monkeypatch):
    payload = b"hello"
    entry = D.DataFile(
        "toy",
        "sub/toy.bin",
        hashlib.sha256(payload).hexdigest(),
        "http://example.invalid/toy.bin",
        "MIT",
        "a toy",
    )
    monkeypatch.setitem(D.REGISTRY, "toy", entry)

    class Response:
        def __init__(self, body):
            self.chunks = [body, b""]

        def read(self, n):
            return self.chunks.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(payload))
    assert D.fetch("toy", download=True).read_bytes() == payload
    (empty_data_root / "sub/toy.bin").unlink()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(b"evil"))
    with pytest.raises(D.DataError, match="wrong sha256"):
        D.fetch("toy", download=True)
    assert list((empty_data_root / "sub").iterdir()) == []


def test_register_is_idempotent_and_guarded(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    entry = D.DataFile("ckpt", "ckpt.pt", "0" * 64, None, "MIT", "a checkpoint")
    assert D.register(entry) is entry
    D.register(entry)  # the same entry again is fine
    with pytest.raises(ValueError, match="already registered"):
        D.register(D.DataFile("ckpt", "other.pt", "1" * 64, None, "MIT", "another"))


# ---------------------------------------------------------------------------- IDX reader
def _write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> None:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(">u1").tobytes())


def test_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", array)
    out = D.read_idx(tmp_path / "x.gz")
    assert out.dtype == np.uint8 and np.array_equal(out, array)
    (tmp_path / "y").write_bytes(
        struct.pack(">BBBBI", 0, 0, 0x0C, 1, 2) + struct.pack(">2i", -1, 7)
    )
    assert D.read_idx(tmp_path / "y").tolist() == [-1, 7]


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"\x01\x02\x08\x01" + b"\x00" * 8, "bad magic number"),
        (struct.pack(">BBBBI", 0, 0, 0x08, 1, 5) + b"abc", "header says shape"),
        (b"\x1f\x8b\x08\x00garbage", "broken gzip"),
    ],
)
def test_idx_corruption_is_a_data_error(tmp_path, blob, message):
    (tmp_path / "bad").write_bytes(blob)
    with pytest.raises(D.DataError, match=message):
        D.read_idx(tmp_path / "bad")


# ---------------------------------------------------------------------------- Fashion-MNIST
@pytest.fixture(scope="module")
def fashion_train():
    return D.load_dataset("fashion_mnist", "train", root=D.REPO_DATA_DIR)


def test_subset_shapes_balance_and_constants(fashion_train):
    test = D.load_dataset("fashion_mnist", "test", root=D.REPO_DATA_DIR)
    for data, n, per_class in ((fashion_train, 10_000, 1000), (test, 2000, 200)):
        assert data.images.shape == (n, 1, 28, 28) and data.images.dtype == torch.float32
        assert data.labels.shape == (n,) and data.labels.dtype == torch.int64
        assert torch.bincount(data.labels, minlength=10).tolist() == [per_class] * 10
        assert data.mean == pytest.approx((0.2860,), abs=1e-4)
        assert data.std == pytest.approx((0.3530,), abs=1e-4)
        pixels = data.denormalize(data.images)
        assert pixels.min() >= 0 and pixels.max() <= 1
        assert torch.allclose(pixels * 255, (pixels * 255).round(), atol=1e-3)  # uint8 grid
    assert fashion_train.classes[0] == "T-shirt/top" and fashion_train.classes[9] == "Ankle boot"
    assert fashion_train.name == "fashion_mnist/train" and len(fashion_train) == 10_000


def test_subset_order_is_deterministic(fashion_train):
    again = D.load_dataset("fashion_mnist", "train", root=D.REPO_DATA_DIR)
    assert torch.equal(again.images, fashion_train.images)
    assert torch.equal(again.labels, fashion_train.labels)
    with np.load(SUBSET) as npz:
        assert np.all(np.diff(npz["index_train"]) > 0)  # kept in the full set's order


def test_labeled_data_helpers(fashion_train):
    small = fashion_train.subset(25, seed=3)
    assert len(small) == 25
    assert sorted(torch.bincount(small.labels, minlength=10).tolist()) == [2] * 5 + [3] * 5
    assert torch.equal(small.images, fashion_train.subset(25, seed=3).images)
    image, label = fashion_train.as_dataset()[0]
    assert image.shape == (1, 28, 28) and label.dtype == torch.int64


@needs_debian
def test_full_set_contains_the_subset(fashion_train):
    assert len(D.load_dataset("fashion_mnist", "test", subset=False)) == 10_000
    full = D.load_dataset("fashion_mnist", "train", subset=False)
    assert len(full) == 60_000 and full.mean == fashion_train.mean and full.std == fashion_train.std
    with np.load(SUBSET) as npz:
        index = torch.from_numpy(npz["index_train"])
    assert len(index.unique()) == 10_000
    # same pixels and the same normalisation constants give bitwise-equal tensors
    assert torch.equal(full.images[index], fashion_train.images)
    assert torch.equal(full.labels[index], fashion_train.labels)


@needs_debian
def test_full_set_from_root_folder_and_missing(tmp_path, empty_data_root):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(D.DEBIAN_FASHION_MNIST_DIR / name, tmp_path / name)
    assert len(D.load_dataset("fashion_mnist", "test", subset=False, root=tmp_path)) == 10_000
    with pytest.raises(D.DataError, match="apt install dataset-fashion-mnist"):
        D.load_dataset("fashion_mnist", "train", subset=False, root=tmp_path)


@needs_debian
def test_subset_rebuilds_identically(tmp_path):
    out = _subset_builder().build(D.DEBIAN_FASHION_MNIST_DIR, tmp_path / "subset.npz")
    with np.load(out) as new, np.load(SUBSET) as shipped:
        assert new.files == shipped.files
        assert all(np.array_equal(new[k], shipped[k]) for k in new.files)


def test_unknown_dataset_and_split():
    with pytest.raises(D.DataError, match="fashion_mnist, cifar10"):
        D.load_dataset("mnist")
    with pytest.raises(ValueError, match="split"):
        D.load_dataset("fashion_mnist", split="val")


# ---------------------------------------------------------------------------- CIFAR-10
def _write_cifar(root: Path, n: int = 3) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]
    for i, name in enumerate(names):
        batch = {
            "batch_label": name,
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [(i + j) % 10 for j in range(n)],
            "filenames": [f"{j}.png" for j in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {
        "label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        "num_cases_per_batch": n,
        "num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_cifar10_reads_the_python_batches(tmp_path):
    folder = _write_cifar(tmp_path)
    train = D.load_dataset("cifar10", "train", root=tmp_path)
    test = D.load_dataset("cifar10", "test", root=folder)  # the batches folder itself works too
    assert train.images.shape == (15, 3, 32, 32) and len(test) == 3
    assert train.classes[3] == "cat" and train.mean == D.CIFAR10_MEAN
    first = pickle.loads((folder / "data_batch_1").read_bytes())["data"][0]
    red = torch.from_numpy(first[:1024].reshape(32, 32)).float() / 255  # R plane comes first
    assert torch.allclose(train.denormalize(train.images[:1])[0, 0], red, atol=1e-6)
    assert test.labels.tolist() == [5, 6, 7]


def test_cifar10_missing_corrupt_and_offline(tmp_path, monkeypatch):
    with pytest.raises(D.DataError, match="download=True"):
        D.load_dataset("cifar10", root=tmp_path)
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(D.DataError, match="no network"):
        D.load_dataset("cifar10", root=tmp_path, download=True)
    folder = _write_cifar(tmp_path / "c")
    (folder / "test_batch").write_bytes(pickle.dumps(Path("x")))  # a pickle that is not data
    with pytest.raises(D.DataError, match="refusing to load"):
        D.load_dataset("cifar10", "test", root=folder)


# ---------------------------------------------------------------------------- ImageNet-style
def test_image_folder(tmp_path):
    for cls, colour in (("cat", (200, 10, 10)), ("dog", (10, 200, 10))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (40 + 10 * i, 30), colour).save(tmp_path / cls / f"{i}.png")
    folder = D.load_image_folder(tmp_path, preprocess="torchvision", size=16)
    assert len(folder) == 4 and folder.classes == ["cat", "dog"]
    image, label = folder[2]
    assert image.shape == (3, 16, 16) and label == 1
    pixels = D.denormalize_imagenet(image, "torchvision")
    assert torch.allclose(pixels[:, 8, 8] * 255, torch.tensor([10.0, 200.0, 10.0]), atol=0.5)
    with pytest.raises(ValueError, match="preprocess must be"):
        D.load_image_folder(tmp_path, preprocess="caffe")
    with pytest.raises(D.DataError, match="does not exist"):
        D.load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(D.DataError, match="class sub-folders"):
        D.load_image_folder(tmp_path / "empty")


def test_photos():
    x, names = D.load_photos()
    assert x.shape == (len(D.PHOTOS), 3, 224, 224) and x.dtype == torch.float32
    assert names == list(D.PHOTOS) and {"coffee", "chelsea", "china"} <= set(names)
    coffee, _ = D.load_photos(["coffee"], preprocess="torchvision")
    assert torch.equal(
        coffee, D.load_photos(["coffee"], preprocess="torchvision")[0]
    )  # deterministic
    assert D.load_photo("coffee").shape == (400, 600, 3)
    with pytest.raises(D.DataError, match="known photos"):
        D.load_photo("dog")
    for p in D.PHOTOS.values():
        assert p.licence and p.source and p.description
        assert p.group in ("object", "grey object", "colour other", "texture")
    assert len(D.PHOTOS) >= 19 and set(D.OBJECT_PHOTOS) <= set(D.PHOTOS)
    assert {"coffee", "chelsea", "grace_hopper"} <= set(D.OBJECT_PHOTOS)
    grey = D.load_photo("camera")  # grey-level photographs come as (H, W) ...
    assert grey.ndim == 2 and grey.dtype == np.uint8
    x, _ = D.load_photos(["camera", "grace_hopper"])  # ... and are repeated over 3 channels
    assert torch.equal(x[0, 0], x[0, 1]) and not torch.equal(x[1, 0], x[1, 1])


def test_preprocessing_constants():
    grey = np.full((300, 500, 3), 127, np.uint8)
    assert torch.equal(D.preprocess_imagenet(grey), torch.zeros(3, 224, 224))
    white = D.preprocess_imagenet(np.full((256, 256), 255, np.uint8), "efficientnet_lite0")
    assert torch.allclose(white, torch.full_like(white, 1.0))
    tv = D.preprocess_imagenet(np.full((300, 300, 3), 255, np.uint8), "torchvision")
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(tv[:, 0, 0], expected)
    assert torch.allclose(D.denormalize_imagenet(tv, "torchvision"), torch.ones_like(tv))
    assert torch.allclose(D.denormalize_imagenet(white), torch.ones_like(white))
    # shorter side to 256, then the centre 224 x 224
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(256, axis=0)
    x = D.preprocess_imagenet(ramp)
    assert x[0, 0, 0] * 128 + 127 == pytest.approx(16, abs=0.5)


def test_imagenet_classes():
    names = D.imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[967] == "espresso" and names[0] == "tench"


def test_docstring_examples(monkeypatch):
    monkeypatch.delenv("PRUNEGRAD_LITE_DATA", raising=False)  # the examples read data/
    attempted = failed = 0
    for module in (D.registry, D.datasets, D.fashion_mnist, D.cifar10, D.labeled, D.images):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        attempted, failed = attempted + result.attempted, failed + result.failed
    assert attempted > 10 and failed == 0
