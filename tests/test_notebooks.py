"""Notebooks: committed clean, written to the house rules, and every one runs top to bottom.

The structural checks read every ``notebooks/*.ipynb`` and fail listing all offenders at once.
The execution test runs each notebook in a fresh ``python3`` kernel of this interpreter, in smoke
mode (``PRUNEGRAD_LITE_SMOKE=1``), with the notebook's folder as working directory; the executed
copy stays in memory, so nothing is written back into the repository.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")  # 03_prunegrad.ipynb
IMPORT = re.compile(r"^import prunegrad_lite as pgl\s*$", re.MULTILINE)
SYS_PATH = re.compile(r"\bsys\.path\b")
DEFINITION = re.compile(r"^\s*(?:async\s+def|def|class)\s+\w+", re.MULTILINE)
CELL_TIMEOUT = 600  # s per cell; smoke mode keeps every cell far below this
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in kernel tracebacks
CLEAR_COMMAND = "jupyter nbconvert --clear-output --inplace notebooks/*.ipynb"


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def test_notebook_folder_exists() -> None:
    assert NOTEBOOK_DIR.is_dir(), f"{NOTEBOOK_DIR} is missing"


def test_notebook_names_are_numbered_and_unique() -> None:
    bad = [p.name for p in NOTEBOOKS if not NAME.match(p.name)]
    assert not bad, f"notebook names must look like NN_lower_snake.ipynb: {bad}"
    numbers = [NAME.match(p.name).group(1) for p in NOTEBOOKS]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not repeated, f"two notebooks share a number: {repeated}"


def test_notebooks_are_valid_nbformat() -> None:
    invalid = {}
    for path in NOTEBOOKS:
        try:
            nbformat.validate(_read(path))
        except (nbformat.ValidationError, ValueError) as err:
            invalid[path.name] = str(err).splitlines()[0]
    assert not invalid, f"invalid notebooks: {invalid}"


def _dirt(nb: nbformat.NotebookNode) -> list[str]:
    """What makes a notebook unclean: outputs, execution counts, run timings, widget state."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {i} has execution_count {cell.execution_count}")
        if "execution" in cell.get("metadata", {}):
            found.append(f"cell {i} has execution timings in its metadata")
    if "widgets" in nb.metadata:
        found.append("saved widget state in the notebook metadata")
    return found


def test_notebooks_are_committed_without_outputs() -> None:
    dirty = {p.name: d for p in NOTEBOOKS if (d := _dirt(_read(p)))}
    assert not dirty, (
        f"notebooks committed with outputs: {dirty}. Clear them with\n  {CLEAR_COMMAND}\n"
        "(timings and widget state in the metadata: see notebooks/README.md)"
    )


def test_notebooks_open_with_a_markdown_title() -> None:
    bad = []
    for path in NOTEBOOKS:
        cells = _read(path).cells
        first = cells[0] if cells else None
        if first is None or first.cell_type != "markdown":
            bad.append(f"{path.name}: the first cell is not markdown")
        elif not first.source.lstrip().startswith("# "):
            bad.append(f"{path.name}: the first cell does not start with a '# ' title")
    assert not bad, "\n".join(bad)


def test_notebooks_import_the_package_by_name_and_hold_no_logic() -> None:
    bad = []
    for path in NOTEBOOKS:
        cells = _code_cells(_read(path))
        if not any(IMPORT.search(source) for _, source in cells):
            bad.append(f"{path.name}: no line 'import prunegrad_lite as pgl'")
        for i, source in cells:
            if SYS_PATH.search(source):
                bad.append(f"{path.name} cell {i}: touches sys.path (install the package instead)")
            for match in DEFINITION.finditer(source):
                bad.append(
                    f"{path.name} cell {i}: defines {match.group(0).strip()!r} "
                    "(move the logic into the package)"
                )
    assert not bad, "\n".join(bad)


# An extra first cell, so that a notebook run by another interpreter's kernel fails at once.
KERNEL_CHECK = "import sys\nprint(sys.prefix)"


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.xdist_group("notebooks")  # with pytest -n N --dist loadgroup: one after another
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_in_smoke_mode(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    original = path.read_bytes()
    nb = _read(path)
    nb.cells.insert(0, nbformat.v4.new_code_cell(KERNEL_CHECK))
    monkeypatch.setenv("PRUNEGRAD_LITE_SMOKE", "1")
    # The kernel draws with its own inline backend, as it would for a learner.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = ANSI.sub("", str(err))
    if error is not None:  # outside the except block, so the traceback is shown once
        pytest.fail(
            f"{path.name} failed (In[1] is the added kernel check):\n{error}", pytrace=False
        )
    outputs = nb.cells[0].outputs
    kernel_prefix = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout").strip()
    assert kernel_prefix == sys.prefix, (
        f"the notebook ran in {kernel_prefix!r}, not in this environment {sys.prefix!r}"
    )
    assert path.read_bytes() == original, f"running {path.name} rewrote the file"
