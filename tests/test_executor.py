"""The executors of the benchmarks' cells (benchmarks/executor.py): a small ROAR grid gives the
same results files run here (``local``) and as Ray tasks (``ray``, a local Ray instance on
127.0.0.1 with 2 CPUs, started by this module); a worker killed mid-cell costs nothing; a cell
that always fails is reported with its error after bounded retries while the others finish; and
choosing an executor fails clearly.

Everything a worker runs is package code (RoarNet, "gradient", "random"), so the workers import
it by name from this checkout (the ``PYTHONPATH`` the session gives them, checked below).
"""

from __future__ import annotations

import json
import operator
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from prunegrad_lite.benchmarks.cache import locked_elsewhere
from prunegrad_lite.benchmarks.executor import (
    Cell,
    CellsFailed,
    LocalExecutor,
    RayExecutor,
    make_executor,
    raise_failures,
)
from prunegrad_lite.benchmarks.pixel_perturbation import PixelPerturbationConfig, pixel_perturbation
from prunegrad_lite.benchmarks.roar import RoarConfig, roar
from prunegrad_lite.benchmarks.roar_models import RoarNet
from prunegrad_lite.benchmarks.sanity import SanityConfig, sanity_checks
from prunegrad_lite.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPE = TrainConfig(epochs=4, batch_size=32, lr=0.05, augment=False, num_classes=4, width=4)
CONFIG = RoarConfig(fractions=(0.25, 0.5), seeds=(0, 1), recipe=RECIPE, longer_reference=0)
METHODS = ["gradient", "random"]
NUM_CELLS = 2 + 2 * 2 * 2  # references (one per seed) + seeds x fractions x methods
VOLATILE = {"wall_time_s"}  # the only fields that differ between two runs: wall times


def blob_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 noise in 4 classes; class c brightens quadrant c."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(n, 1, 8, 8, generator=gen)
    y = torch.randint(0, 4, (n,), generator=gen)
    for c, (r, k) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        x[y == c, :, r : r + 4, k : k + 4] += 2.0
    return x, y


def run_grid(cache: Path, executor) -> dict:
    """The grid's result as the file ``result.save`` writes (JSON), wall times dropped."""
    torch.manual_seed(0)
    model = RoarNet(1, 4, width=4).eval()  # untrained: its gradient maps still rank pixels
    result = roar(model, blob_images(600, 1), blob_images(200, 2), METHODS, CONFIG,
                  cache_dir=cache / "cache", device="cpu", progress=False,
                  executor=executor)  # fmt: skip
    files = result.save(cache / "out", figure=False)
    return {kind: _drop(json.loads(p.read_text())) if kind == "json" else p.read_text()
            for kind, p in files.items()}  # fmt: skip


def _drop(value):
    if isinstance(value, dict):
        return {k: _drop(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_drop(v) for v in value]
    return value


def cell_files(cache: Path) -> list[str]:
    found = (cache / "cache" / "roar").rglob("*.json")
    return sorted(str(p.relative_to(cache)) for p in found if p.is_file())


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The grid run here, one torch thread per cell like a Ray task with one CPU (the thread
    count can change a float's last bits, so both sides use the same)."""
    cache = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return cache, run_grid(cache, "local")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="the ray executor needs the [distributed] extra")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})  # fmt: skip
    try:
        yield ray
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------- choosing


def test_executors_are_chosen_by_name_and_fail_clearly(monkeypatch):
    assert isinstance(make_executor("local"), LocalExecutor)
    assert isinstance(make_executor(None), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor 'dask'; choose from local, ray"):
        make_executor("dask")
    with pytest.raises(ValueError, match="--address needs --executor ray"):
        make_executor("local", address="10.0.0.1:6379")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"pip install prunegrad-lite\[distributed\]"):
        make_executor("ray")


def test_importing_the_package_does_not_import_ray():
    code = (
        "import sys, prunegrad_lite, prunegrad_lite.benchmarks.reproduce, prunegrad_lite.cli; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_the_local_executor_retries_a_failing_cell_and_reports_it_after_the_rest():
    calls = []

    def failing(x):
        calls.append(x)
        raise RuntimeError(f"disk full at {x}")

    cells = [Cell("a", operator.add, (1, 2)), Cell("b", failing, (7,), label="cell b")]
    cells.append(Cell("c", pow, (2, 3)))
    done, failures = LocalExecutor(retries=2).run(cells)
    assert done == {"a": 3, "c": 8} and calls == [7, 7, 7]  # 1 try + 2 retries
    assert [(f.key, f.attempts) for f in failures] == [("b", 3)]
    assert failures[0].error.startswith("RuntimeError: disk full at 7")
    with pytest.raises(CellsFailed, match=r"cell b \(3 attempts\): RuntimeError: disk full"):
        raise_failures(failures)


# ---------------------------------------------------------------------------------- Ray


@pytest.mark.slow
def test_ray_workers_import_this_checkout(ray_session):
    from prunegrad_lite.benchmarks.executor import _package_root

    done, failures = RayExecutor().run([Cell("where", _package_root)])
    assert not failures and done["where"] == str(ROOT)


@pytest.mark.slow
def test_a_roar_grid_gives_the_same_results_files_locally_and_on_ray(
    ray_session, local_run, tmp_path
):
    local_dir, local = local_run
    remote = run_grid(tmp_path, RayExecutor(cpus_per_cell=1))
    assert len(cell_files(local_dir)) == len(cell_files(tmp_path)) == NUM_CELLS
    assert cell_files(local_dir) == cell_files(tmp_path)  # the same keys
    assert remote == local  # every results file, wall times aside


def _is_ray_worker(pid: int) -> bool:
    """Is ``pid`` a Ray worker process (its command line says ``ray::``)? Never kill another."""
    try:
        return b"ray::" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.slow
def test_pixel_perturbation_gives_the_same_result_locally_and_on_ray(ray_session, tmp_path):
    """Pixel perturbation's cells are its methods (each one's maps and tie-breaking depend on
    the seed alone): the same result file here and on Ray, and each method stored once."""
    torch.manual_seed(0)
    model = RoarNet(1, 4, width=4).eval()
    images = blob_images(24, 3)[0]
    config = PixelPerturbationConfig(fractions=(0.1, 0.25), replacement=("mean", "noisy_linear"))
    methods = ["gradient", "smoothgrad", "random"]

    def run(executor, folder):
        result = pixel_perturbation(model, images, methods, config, device="cpu", seed=5,
                                    progress=False, cache_dir=folder, executor=executor)  # fmt: skip
        return result.to_json()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per cell, as in a Ray task with one CPU
    try:
        local = run("local", None)
    finally:
        torch.set_num_threads(threads)
    assert run(RayExecutor(), tmp_path) == local
    assert len(list((tmp_path / "pixel").rglob("*.pt"))) == len(methods)
    assert run("local", tmp_path) == local  # read back from the cache Ray's workers wrote


@pytest.mark.slow
def test_sanity_checks_give_the_same_result_locally_and_on_ray(ray_session, tmp_path):
    """The sanity checks' cells are their randomisation steps (each rebuilt from its seeded
    stage generators): the same result here and on Ray, every step stored once."""
    torch.manual_seed(0)
    model = RoarNet(1, 4, width=4).eval()
    images = blob_images(6, 4)[0]
    config = SanityConfig(measures=("spearman_abs", "ssim"), inits=("authors", "reset"), draws=2)
    methods = ["gradient", "random"]

    def run(executor, folder):
        result = sanity_checks(model, images, methods, config, device="cpu", seed=2,
                               progress=False, cache_dir=folder, executor=executor)  # fmt: skip
        return result.to_json(), result.examples["maps"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per cell, as in a Ray task with one CPU
    try:
        local, local_maps = run("local", None)
    finally:
        torch.set_num_threads(threads)
    remote, remote_maps = run(RayExecutor(), tmp_path)
    assert remote == local
    assert list(remote_maps) == list(local_maps)
    assert all(torch.equal(remote_maps[c], local_maps[c]) for c in local_maps)
    steps = 2 * 2 * 2 * 4  # inits x variants x draws x stages (RoarNet: fc and 3 convolutions)
    assert len(list((tmp_path / "sanity").rglob("*_s?.pt"))) == steps


@pytest.mark.slow
def test_a_worker_killed_mid_cell_loses_nothing(ray_session, local_run, tmp_path):
    """A watcher SIGKILLs the first Ray worker it finds holding a ROAR cell's lock (the lock
    file names the holder's pid); Ray retries the cell on another worker, the kernel has freed
    the lock and the atomic writes left no partial file."""
    _, local = local_run
    killed: list[int] = []
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set() and not killed:
            for lock in (tmp_path / "cache" / "roar").rglob("*.json.lock"):
                holder = lock.read_text().split()
                cell = lock.with_name(lock.name[: -len(".lock")])
                if len(holder) > 1 and holder[1] != str(os.getpid()) and locked_elsewhere(cell):
                    if not _is_ray_worker(int(holder[1])):
                        continue  # only ever a worker of this test's Ray instance
                    os.kill(int(holder[1]), signal.SIGKILL)
                    killed.append(int(holder[1]))
                    break
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        remote = run_grid(tmp_path, RayExecutor(cpus_per_cell=1, retries=2))
    finally:
        finished.set()
        watcher.join(5)
    assert killed, "no worker was caught holding a cell"
    assert len(cell_files(tmp_path)) == NUM_CELLS  # every cell, none lost
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # no partial write left
    assert remote == local


@pytest.mark.slow
def test_a_cell_that_always_fails_is_reported_and_the_others_finish(
    ray_session, local_run, tmp_path
):
    """One cell's cache file cannot be written (a folder sits at its path): it fails on every
    try, its lock is released each time (no retry waits for it), it is named with its error
    once the nine others are stored; removing the folder, a rerun computes only that cell."""
    local_dir, local = local_run
    broken = tmp_path / cell_files(local_dir)[-1]
    broken.mkdir(parents=True)
    with pytest.raises(CellsFailed) as failed:
        run_grid(tmp_path, RayExecutor(cpus_per_cell=1, retries=1))
    message = str(failed.value)
    assert "1 cell(s) failed" in message and "(2 attempts)" in message
    assert "IsADirectoryError" in message or "OSError" in message, message
    assert len(cell_files(tmp_path)) == NUM_CELLS - 1  # the others are all there
    broken.rmdir()
    assert run_grid(tmp_path, RayExecutor(cpus_per_cell=1)) == local
    assert len(cell_files(tmp_path)) == NUM_CELLS


def test_the_command_line_names_the_extra_when_ray_is_missing(monkeypatch, capsys, tmp_path):
    from prunegrad_lite.cli import main

    argv = ["reproduce", "--benchmark", "roar", "--out", str(tmp_path)]
    assert main([*argv, "--executor", "local", "--address", "auto"]) == 1
    assert "--address needs --executor ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main([*argv, "--executor", "ray"]) == 1
    assert "pip install prunegrad-lite[distributed]" in capsys.readouterr().err
    assert main(["reproduce", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--executor {local,ray}" in help_text and "--address ADDRESS" in help_text


def test_reproduce_reports_failed_cells_after_the_other_benchmarks(monkeypatch, capsys, tmp_path):
    """A benchmark whose cells failed is named (stderr, exit 1, run.json's failed_cells) once
    the run is over; the rest of the run is written."""
    import importlib

    from prunegrad_lite.benchmarks.executor import CellFailure
    from prunegrad_lite.cli import main

    reproduce_module = importlib.import_module("prunegrad_lite.benchmarks.reproduce")
    failure = CellFailure("k", "ROAR gradient roar t=0.1 seed 0", "OSError: disk full", 3)

    def failing_roar(*args, **kwargs):
        assert isinstance(kwargs["executor"], LocalExecutor)  # the CLI's executor is passed on
        raise CellsFailed([failure])

    monkeypatch.setenv("PRUNEGRAD_LITE_SMOKE", "1")
    monkeypatch.setattr(reproduce_module, "roar", failing_roar)
    argv = ["reproduce", "--benchmark", "roar", "--model", "fashion_mnist", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "1 cell(s) failed" in err and "ROAR gradient roar t=0.1 seed 0 (3 attempts)" in err
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["failed_cells"][0]["error"] == "OSError: disk full"
    assert run["executor"] == "local" and (tmp_path / "summary.md").is_file()


class _Recording(LocalExecutor):
    """A local executor that records being closed."""

    closed = 0

    def close(self) -> None:
        type(self).closed += 1


def test_executor_for_closes_what_it_made_also_on_error_and_leaves_a_given_one_open(monkeypatch):
    from prunegrad_lite.benchmarks import executor as executor_module

    monkeypatch.setattr(_Recording, "closed", 0)
    monkeypatch.setattr(executor_module, "make_executor", lambda *a, **k: _Recording())
    with pytest.raises(RuntimeError, match="boom"):
        with executor_module.executor_for("local") as runner:
            assert isinstance(runner, _Recording)
            raise RuntimeError("boom")
    assert _Recording.closed == 1  # made here: closed although the block raised
    given = _Recording()
    monkeypatch.setattr(executor_module, "make_executor", lambda name, *a, **k: name)
    with executor_module.executor_for(given) as runner:
        assert runner is given
    assert _Recording.closed == 1  # the caller's: left open


def test_roar_closes_the_executor_it_made_when_its_setup_raises(monkeypatch):
    """An error between making the executor and running the cells (here: hashing the setup)
    still closes the executor ROAR made (a Ray instance it started would otherwise stay up)."""
    import importlib

    from prunegrad_lite.benchmarks import executor as executor_module

    roar_module = importlib.import_module("prunegrad_lite.benchmarks.roar")  # not the function
    monkeypatch.setattr(_Recording, "closed", 0)
    monkeypatch.setattr(executor_module, "make_executor", lambda *a, **k: _Recording())

    def broken(*args, **kwargs):
        raise RuntimeError("setup failed")

    monkeypatch.setattr(roar_module, "setup_hash", broken)
    gen = torch.Generator().manual_seed(0)
    data = (torch.randn(8, 1, 8, 8, generator=gen), torch.randint(0, 2, (8,), generator=gen))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)).eval()
    with pytest.raises(RuntimeError, match="setup failed"):
        roar_module.roar(model, data, data, ["gradient"], device="cpu", progress=False)
    assert _Recording.closed == 1
