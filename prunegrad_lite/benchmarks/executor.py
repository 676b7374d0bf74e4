"""Where a benchmark's independent cells run: in this process (``local``) or as Ray tasks (``ray``).

A *cell* (:class:`Cell`) is one independent unit of work: a module-level function, its small
per-cell arguments and its large ``shared`` inputs (tensors, a model: the same objects for many
cells). Every cell function stores its result atomically in the cache folder under the cell's key
before it returns, and reads it from there when it is already done, so a cell is idempotent and
the cache folder is the single source of truth: an executor only decides *where* cells run.

* :class:`LocalExecutor` (the default, no dependency): the cells one after another in this
  process, in their order; a cell another process on the same cache folder is computing
  (``Cell.busy``) is put at the end, so that two processes share the work.
* :class:`RayExecutor` (``pip install prunegrad-lite[distributed]``): each cell a Ray core task
  with ``num_cpus`` (and ``num_gpus`` on CUDA), the shared inputs put once in Ray's object store;
  a worker that dies (``max_retries``) or a cell that raises (``retry_exceptions``) is retried
  up to ``retries`` times. Ray is imported only here, when the executor starts. Without an
  ``address`` it starts a local Ray instance (and shuts it down in :meth:`~RayExecutor.close`);
  with one it connects to that cluster.

Both run every cell they can: a cell that still fails after its retries is a
:class:`CellFailure` (its error in words); the others finish and are stored, and
:func:`raise_failures` names every failure at the end.

Example
-------
>>> with make_executor("ray", num_cpus=2) as ex:          # a local Ray instance
...     done, failed = ex.run([Cell("a", pow, (2, 10))])
>>> done["a"]
1024
"""

from __future__ import annotations

import contextlib
import copy
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

__all__ = [
    "EXECUTORS",
    "Cell",
    "CellFailure",
    "CellsFailed",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "executor_for",
    "for_cells",
    "make_executor",
    "raise_failures",
    "run_cells",
]

EXECUTORS = ("local", "ray")
DISTRIBUTED_HINT = "pip install prunegrad-lite[distributed]"


@dataclass
class Cell:
    """One independent unit of work: ``fn(*shared, *args)`` returns its (JSON-able) result.

    ``key`` names it (unique in a run: the cache path). ``fn`` must be a module-level function
    (Ray sends it by name). ``busy``: probed by the local executor, True while another process
    on the same cache folder computes this cell (it is then done last). ``locks``: the kinds
    of cache locks (:mod:`.locks`) it may take, released when it raises.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    shared: tuple[Any, ...] = ()
    label: str = ""
    busy: Callable[[], bool] | None = field(default=None, repr=False)
    locks: tuple[str, ...] = ()


@dataclass
class CellFailure:
    """A cell that failed after its retries: its key, label and error (type, message, where)."""

    key: str
    label: str
    error: str
    attempts: int


class CellsFailed(RuntimeError):
    """Some cells failed after their retries; every other cell finished and is cached."""

    def __init__(self, failures: Sequence[CellFailure]) -> None:
        self.failures = list(failures)
        lines = [f"{len(self.failures)} cell(s) failed after their retries:"]
        for f in self.failures:
            lines.append(f"  {f.label or f.key} ({f.attempts} attempts): {f.error}")
        lines.append("every other cell is stored in the cache; run again to retry the failed ones")
        super().__init__("\n".join(lines))


def raise_failures(failures: Sequence[CellFailure]) -> None:
    """Raise :class:`CellsFailed` naming every failure (nothing when there is none)."""
    if failures:
        raise CellsFailed(failures)


def _describe(err: BaseException) -> str:
    where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    at = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
    first = (str(err).strip().splitlines() or [""])[-1][:300]
    return f"{type(err).__name__}: {first}{at}"


Done = Callable[[Cell, Any], None]  # called in the driver when a cell is done


class Executor:
    """Runs cells; ``run`` returns ``({key: result}, [failures])``. A context manager."""

    name = "executor"

    def __init__(self, retries: int = 2) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.retries = retries

    def run(
        self, cells: Sequence[Cell], on_done: Done | None = None
    ) -> tuple[dict[str, Any], list[CellFailure]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (nothing for the local one)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor(Executor):
    """The cells one after another in this process (today's behaviour; the default)."""

    name = "local"

    def run(
        self, cells: Sequence[Cell], on_done: Done | None = None
    ) -> tuple[dict[str, Any], list[CellFailure]]:
        from prunegrad_lite.benchmarks.locks import release_all

        pending = list(cells)
        done: dict[str, Any] = {}
        failures: list[CellFailure] = []
        deferred = 0  # cells put back in a row because another process holds them
        while pending:
            cell = pending.pop(0)
            if cell.busy is not None and pending and deferred < len(pending) and cell.busy():
                pending.append(cell)  # another process computes it: do the others first
                deferred += 1
                continue
            deferred = 0
            for attempt in range(1, self.retries + 2):
                try:
                    done[cell.key] = cell.fn(*cell.shared, *cell.args)
                    break
                except Exception as err:  # noqa: BLE001 - reported at the end, with the rest
                    release_all(cell.locks)  # a retry (or another process) takes them
                    if attempt > self.retries:
                        failures.append(CellFailure(cell.key, cell.label, _describe(err), attempt))
            if cell.key in done and on_done is not None:
                on_done(cell, done[cell.key])
        return done, failures


def _package_root() -> str:
    """The folder that holds this ``prunegrad_lite`` package (a worker's ``PYTHONPATH``)."""
    return str(Path(__file__).resolve().parents[2])


def _ray_cell(cpus: int, fn: Callable[..., Any], *args: Any) -> Any:
    """A cell inside a Ray worker: ``cpus`` torch threads; a failed cell's lock released."""
    from prunegrad_lite.benchmarks.locks import release_all

    torch.set_num_threads(max(1, int(cpus)))
    try:
        return fn(*args)
    finally:
        release_all()  # a worker process is reused: hold no lock between cells


class RayExecutor(Executor):
    """Each cell a Ray core task (see the module docstring).

    Parameters
    ----------
    address : a running cluster's address (``ray start --head`` prints it; "auto" finds the
        local one); None: start a local Ray instance with ``num_cpus`` CPUs (None: all).
    num_cpus : CPUs of the local instance (only without ``address``).
    cpus_per_cell : ``num_cpus`` of every task (and its torch threads); default 1.
    gpus_per_cell : ``num_gpus`` of every task (set it on CUDA; default 0).
    retries : how often a cell is retried after a worker died or the cell raised.
    runtime_env : Ray's runtime environment for the workers; default for a local instance:
        ``PYTHONPATH`` naming this package's folder, so the workers import this very code.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cpus_per_cell: float = 1,
        gpus_per_cell: float = 0,
        retries: int = 2,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(retries)
        try:
            import ray
        except ImportError as err:
            raise ImportError(
                f"the ray executor needs Ray: {DISTRIBUTED_HINT} (or pip install 'ray>=2.9')"
            ) from err
        self._ray = ray
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_cell, self.gpus_per_cell = cpus_per_cell, gpus_per_cell
        self.runtime_env = runtime_env
        self._started = False  # did we start (and so must shut down) the Ray instance?

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            return  # a session the caller started (a notebook, a test): use it as it is
        env = self.runtime_env
        if env is None and self.address is None:
            path = os.pathsep.join(p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)
            env = {"env_vars": {"PYTHONPATH": path}}
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if env is not None:
            kwargs["runtime_env"] = env
        if self.address is None:
            ray.init(address="local", num_cpus=self.num_cpus, **kwargs)
            self._started = True
        else:
            ray.init(address=self.address, **kwargs)

    def run(
        self, cells: Sequence[Cell], on_done: Done | None = None
    ) -> tuple[dict[str, Any], list[CellFailure]]:
        if not cells:
            return {}, []
        self._connect()
        ray = self._ray
        task = ray.remote(_ray_cell).options(
            num_cpus=self.cpus_per_cell,
            num_gpus=self.gpus_per_cell,
            max_retries=self.retries,  # the worker process died
            retry_exceptions=True,  # the cell raised: also retried, same bound
        )
        refs: dict[int, Any] = {}  # id(shared object) -> its ObjectRef, put once

        def ref(obj: Any) -> Any:
            if id(obj) not in refs:
                refs[id(obj)] = ray.put(obj)
            return refs[id(obj)]

        futures = {
            task.remote(self.cpus_per_cell, cell.fn, *map(ref, cell.shared), *cell.args): cell
            for cell in cells
        }
        done: dict[str, Any] = {}
        failures: list[CellFailure] = []
        waiting = list(futures)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            cell = futures[ready[0]]
            try:
                done[cell.key] = ray.get(ready[0])
            except Exception as err:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...
                cause = getattr(err, "cause", None) or err
                failures.append(
                    CellFailure(cell.key, cell.label, _describe(cause), self.retries + 1)
                )
                continue
            if on_done is not None:
                on_done(cell, done[cell.key])
        return done, failures

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def make_executor(
    name: str | Executor | None = "local",
    address: str | None = None,
    *,
    device: str | torch.device | None = None,
    **options: Any,
) -> Executor:
    """An executor by name: "local" (default) or "ray" (``address``: a cluster, None: a local
    instance). ``device`` "cuda..." gives every Ray task one GPU unless ``gpus_per_cell`` is
    given. An :class:`Executor` is returned as it is."""
    if isinstance(name, Executor):
        return name
    name = name or "local"
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    if name == "local":
        if address is not None:
            raise ValueError("--address needs --executor ray")
        return LocalExecutor(retries=options.get("retries", 2))
    if device is not None and torch.device(device).type == "cuda":
        options.setdefault("gpus_per_cell", 1)
    return RayExecutor(address, **options)


@contextlib.contextmanager
def executor_for(
    executor: str | Executor | None,
    address: str | None = None,
    *,
    device: str | torch.device | None = None,
) -> Iterator[Executor]:
    """The executor a benchmark call runs its cells on, for the ``with`` block.

    ``executor``: an :class:`Executor` (used as it is and left open: its owner closes it), or a
    name for :func:`make_executor` (None: "local"), which is made here and closed on exit (a
    Ray instance it started is shut down), also when the block raised.
    """
    runner = make_executor(executor or "local", address, device=device)
    try:
        yield runner
    finally:
        if runner is not executor:
            runner.close()


def for_cells(runner: Executor, obj: Any) -> Any:
    """``obj`` (a model) as the cells get it: itself in this process, else a CPU copy (a Ray
    worker may have no GPU; each cell moves it to its own device)."""
    return obj if isinstance(runner, LocalExecutor) else copy.deepcopy(obj).cpu()


def run_cells(
    runner: Executor, cells: Sequence[Cell], desc: str, progress: bool = True
) -> dict[str, Any]:
    """Run one phase of cells with one progress bar; ``{key: result}`` of every cell.

    A cell that failed after its retries raises :class:`CellsFailed` once the others are done
    (and stored in the cache).
    """
    bar = tqdm(total=len(cells), desc=desc, disable=not progress)
    try:
        done, failures = runner.run(cells, lambda cell, result: bar.update(1))
    finally:
        bar.close()
    raise_failures(failures)
    return done
