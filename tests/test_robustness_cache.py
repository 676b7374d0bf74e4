"""Issue 17, finding 5: a cache that heals, and a lock so two runs on one folder share the work.

Each kind of cached file is damaged (truncated JSON, empty file, ``{}``, truncated ``.pt``,
edited content): the next run names the file in a warning, recomputes it and gets the result
an undamaged run gets.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from test_benchmarks_known_answers import PatchModel, PerfectMap, linear_model, patch_images

from prunegrad_lite.benchmarks import BenchmarkResult
from prunegrad_lite.benchmarks.cache import (
    CacheWarning,
    heal,
    load_json_cell,
    load_result_cell,
    read_json,
    read_tensor,
    store_json_cell,
    store_result_cell,
    write_json,
    write_tensor,
)
from prunegrad_lite.benchmarks.roar import RoarConfig, roar
from prunegrad_lite.training import TrainConfig

# a ROAR cell retrains in roar_cells (the unit an executor runs)
roar_cells = importlib.import_module("prunegrad_lite.benchmarks.roar_cells")
FAST = TrainConfig(epochs=1, batch_size=64, lr=0.05, augment=False, num_classes=2)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated": _truncate,
    "empty": lambda p: p.write_bytes(b""),
    "empty_object": lambda p: p.write_text("{}"),
    "edited": lambda p: p.write_text(p.read_text().replace('"seed": 0', '"seed": 7', 1)),
    "list": lambda p: p.write_text("[1, 2]"),
}


@pytest.fixture
def roar_run(tmp_path, monkeypatch):
    train, test = patch_images(128, 1, seed=3), patch_images(32, 1, seed=4)
    config = RoarConfig(fractions=(0.5,), seeds=(0,), recipe=FAST, longer_reference=0)
    kwargs = dict(cache_dir=tmp_path, device="cpu", progress=False, model_fn=linear_model)
    model = PatchModel(1).eval()
    trained: list = []
    real_train = roar_cells.train_model

    def counting_train(*args, **kw):
        trained.append(1)
        return real_train(*args, **kw)

    monkeypatch.setattr(roar_cells, "train_model", counting_train)

    def run():
        trained.clear()
        result = roar(model, train, test, ["random", PerfectMap], config, **kwargs)
        return result, len(trained)

    return run, tmp_path


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_roar_cell_heals_with_a_warning_naming_it(roar_run, damage):
    run, cache = roar_run
    first, n = run()
    assert n == 3  # reference + two methods
    cells = sorted((cache / "roar").rglob("t0.5000_*.json"))
    victim = cells[0]
    DAMAGE[damage](victim)
    with pytest.warns(CacheWarning, match=str(victim.name)):
        again, n = run()
    assert n == 1  # only the damaged cell was retrained
    assert again.scores == first.scores
    assert read_json(victim) is not None  # rewritten, valid
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        _, n = run()  # healed: nothing to warn about, nothing to retrain
    assert n == 0


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_a_tensor", "wrong_shape", "edited"])
def test_damaged_rank_maps_heal_with_a_warning_naming_them(roar_run, damage):
    run, cache = roar_run
    first, _ = run()
    maps = sorted((cache / "maps").rglob("*.pt"))
    assert len(maps) == 2
    victim = maps[0]
    if damage == "truncated":
        _truncate(victim)
    elif damage == "empty":
        victim.write_bytes(b"")
    elif damage == "not_a_tensor":
        torch.save({"weights": [1, 2]}, victim)
    elif damage == "wrong_shape":
        write_tensor(victim, torch.zeros(3, 4, dtype=torch.int16))
    else:  # a bit flipped inside the tensor: the checksum catches it
        payload = torch.load(victim, weights_only=True)
        payload["tensor"][0, :2] = payload["tensor"][0, :2].flip(0)
        torch.save(payload, victim)
    # maps are read only for cells still to train: drop the method cells (the reference stays)
    method_cells = [c for c in (cache / "roar").rglob("*.json") if "none" not in c.parent.name]
    assert len(method_cells) == 2
    for cell in method_cells:
        cell.unlink()
    with pytest.warns(CacheWarning, match=victim.name):
        again, n = run()
    assert n == 2 and again.scores == first.scores  # maps recomputed identically, cells retrained
    assert read_tensor(victim) is not None


def test_legacy_bare_rank_tensor_is_still_read(roar_run):
    run, cache = roar_run
    first, _ = run()
    for path in (cache / "maps").rglob("*.pt"):
        torch.save(torch.load(path, weights_only=True)["tensor"], path)  # the old format
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again, n = run()
    assert n == 0 and again.scores == first.scores


def _result() -> BenchmarkResult:
    from prunegrad_lite.benchmarks.results import CurvePoint, Score

    curves = [CurvePoint("gradient", "accuracy", "morf", 0, 0.1, "10%", 0.5, 0.1, 4)]
    scores = [Score("gradient", "aoc", 0.3, 0.05, 4)]
    return BenchmarkResult("pixel", "m", ["gradient"], curves, scores, {"a": 1})


@pytest.mark.parametrize("damage", ["truncated", "empty", "empty_object", "list", "edited"])
def test_damaged_results_file_is_recomputed(tmp_path, damage):
    path = tmp_path / "results" / "pixel_m_abc.json"
    store_result_cell(path, _result())
    assert load_result_cell(path).scores == _result().scores
    if damage == "edited":
        path.write_text(path.read_text().replace("0.3", "0.9", 1))
    else:
        DAMAGE[damage](path)
    with pytest.warns(CacheWarning, match=path.name):
        assert load_result_cell(path) is None
    store_result_cell(path, _result())  # the recomputed result (releases the lock)
    assert load_result_cell(path).scores == _result().scores


def test_results_load_names_the_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"benchmark": "pixel", "mod')
    with pytest.raises(ValueError, match="r.json"):
        BenchmarkResult.load(path)
    path.write_text("{}")
    with pytest.raises(ValueError, match="r.json"):
        BenchmarkResult.load(path)


def test_heal_deletes_unreadable_files_nobody_reads(tmp_path):
    good, bad, old = (
        tmp_path / "a" / "good.json",
        tmp_path / "a" / "bad.json",
        tmp_path / "old.json",
    )
    write_json(good, {"x": 1})
    write_json(bad, {"x": 2})
    _truncate(bad)
    old.write_text('{"x": 3}')  # written before checksums: kept
    pt = tmp_path / "m.pt"
    write_tensor(pt, torch.arange(4).view(1, 4))
    _truncate(pt)
    with pytest.warns(CacheWarning, match="bad.json"):
        removed = heal(tmp_path)
    assert sorted(p.name for p in removed) == ["bad.json", "m.pt"]
    assert good.is_file() and old.is_file() and not bad.exists() and not pt.exists()


def test_a_second_process_waits_for_the_cell_and_reuses_it(tmp_path):
    """Process A holds a cell's lock while it 'computes'; B waits, says so and reuses A's result."""
    path = tmp_path / "cell.json"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from prunegrad_lite.benchmarks.cache import load_json_cell, store_json_cell
        assert load_json_cell({str(path)!r}) is None   # takes the lock
        print("computing", flush=True)
        time.sleep(2.0)
        store_json_cell({str(path)!r}, {{"value": 42}})
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert proc.stdout.readline().strip() == "computing"
        with pytest.warns(CacheWarning, match="being computed by process"):
            record = load_json_cell(path)
        assert record == {"value": 42}  # reused, not computed again
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0
    # a free cell is taken at once, and released when stored
    other = tmp_path / "other.json"
    assert load_json_cell(other) is None
    store_json_cell(other, {"value": 1})
    assert json.loads(other.read_text())["value"] == 1
