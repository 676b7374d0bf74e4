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
FROM_SCRATCH = "from-scratch"  # the tag of the one cell that may define functions (03)
SOLUTION = "solution"  # the tag of an exercise's answer code cell


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


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _logic_offences(path: Path, nb: nbformat.NotebookNode) -> list[str]:
    """Definitions outside the one ``from-scratch`` cell a notebook may have, and sys.path."""
    bad = []
    scratch = [i for i, c in enumerate(nb.cells) if FROM_SCRATCH in _tags(c)]
    if len(scratch) > 1:
        bad.append(
            f"{path.name}: {len(scratch)} cells tagged {FROM_SCRATCH!r} {scratch} (one at most)"
        )
    for i, cell in enumerate(nb.cells):
        if FROM_SCRATCH in _tags(cell) and cell.cell_type != "code":
            bad.append(f"{path.name} cell {i}: tagged {FROM_SCRATCH!r} but not a code cell")
    for i, source in _code_cells(nb):
        if SYS_PATH.search(source):
            bad.append(f"{path.name} cell {i}: touches sys.path (install the package instead)")
        if i in scratch:
            continue  # the method written out for the learner to read (notebook 03)
        for match in DEFINITION.finditer(source):
            bad.append(
                f"{path.name} cell {i}: defines {match.group(0).strip()!r} "
                f"(move the logic into the package; only a cell tagged {FROM_SCRATCH!r} may)"
            )
    return bad


def test_notebooks_import_the_package_by_name_and_hold_no_logic() -> None:
    bad = []
    for path in NOTEBOOKS:
        nb = _read(path)
        if not any(IMPORT.search(source) for _, source in _code_cells(nb)):
            bad.append(f"{path.name}: no line 'import prunegrad_lite as pgl'")
        bad += _logic_offences(path, nb)
    assert not bad, "\n".join(bad)


def test_the_logic_check_allows_definitions_only_in_the_from_scratch_cell() -> None:
    def nb(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
        return nbformat.v4.new_notebook(cells=list(cells))

    code = "def f(x):\n    return x\n"
    scratch = nbformat.v4.new_code_cell(code, metadata={"tags": [FROM_SCRATCH]})
    plain = nbformat.v4.new_code_cell(code)
    path = Path("03_x.ipynb")
    assert _logic_offences(path, nb(scratch)) == []
    assert len(_logic_offences(path, nb(plain))) == 1
    assert len(_logic_offences(path, nb(scratch, plain))) == 1  # a second, untagged cell
    second = nbformat.v4.new_code_cell(code, metadata={"tags": [FROM_SCRATCH]})
    assert _logic_offences(path, nb(scratch, second))  # two from-scratch cells
    tagged_sys = nbformat.v4.new_code_cell(
        "import sys\nsys.path", metadata={"tags": [FROM_SCRATCH]}
    )
    assert _logic_offences(path, nb(tagged_sys))  # sys.path stays forbidden there too


# ---------------------------------------------------------------- the Exercises convention

EXERCISES = re.compile(r"^## Exercises\s*$")
NUMBERED = re.compile(r"^(\d+)\.\s", re.MULTILINE)  # "1. Predict ..." at the start of a line


def _exercise_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What breaks the convention: the notebook ends with an ``## Exercises`` markdown cell
    listing 2-4 numbered exercises, then per exercise k a markdown cell ``**Answer k**`` and a
    hidden code cell tagged ``solution`` that calls the notebook's course module."""
    cells = nb.cells
    starts = [
        i
        for i, c in enumerate(cells)
        if c.cell_type == "markdown" and EXERCISES.match(c.source.lstrip().split("\n", 1)[0])
    ]
    if len(starts) != 1:
        return [f"{len(starts)} markdown cells whose first line is '## Exercises' (want one)"]
    start = starts[0]
    numbers = [int(n) for n in NUMBERED.findall(cells[start].source)]
    k = len(numbers)
    problems = []
    if not 2 <= k <= 4 or numbers != list(range(1, k + 1)):
        problems.append(f"the Exercises cell numbers {numbers}: want 1, 2[, 3[, 4]]")
    answers = cells[start + 1 :]
    if len(answers) != 2 * k:
        problems.append(
            f"{len(answers)} cells after '## Exercises', want {2 * k} (an answer and a solution "
            "per exercise, and nothing after them)"
        )
    for j in range(min(k, len(answers) // 2)):
        text, code = answers[2 * j], answers[2 * j + 1]
        where = f"exercise {j + 1} (cells {start + 1 + 2 * j}, {start + 2 + 2 * j})"
        if text.cell_type != "markdown" or not text.source.lstrip().startswith(
            f"**Answer {j + 1}**"
        ):
            problems.append(
                f"{where}: the first is not a markdown cell starting '**Answer {j + 1}**'"
            )
        if code.cell_type != "code":
            problems.append(f"{where}: the second is not a code cell")
            continue
        if _tags(code) != [SOLUTION]:
            problems.append(f"{where}: the code cell's tags are {_tags(code)}, want [{SOLUTION!r}]")
        if code.metadata.get("jupyter", {}).get("source_hidden") is not True:
            problems.append(f"{where}: the solution is not collapsed (jupyter.source_hidden)")
        if "pgl.course." not in code.source:
            problems.append(f"{where}: the solution calls no pgl.course function")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_ends_with_exercises_and_checked_answers(path: Path) -> None:
    problems = _exercise_problems(_read(path))
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_exercise_check_reads_the_convention() -> None:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    hidden = {"tags": [SOLUTION], "jupyter": {"source_hidden": True}}

    def nb(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
        return nbformat.v4.new_notebook(cells=[md("# T"), *cells])

    good = [
        md("## Exercises\n\n1. Predict.\n2. Check.\n"),
        md("**Answer 1** Because."),
        code("pgl.course.answer_1()", metadata=hidden),
        md("**Answer 2** So."),
        code("pgl.course.answer_2()", metadata=hidden),
    ]
    assert _exercise_problems(nb(*good)) == []
    assert _exercise_problems(nb(*good[:3]))  # an answer missing
    assert _exercise_problems(nb(*good, md("more")))  # something after the answers
    assert _exercise_problems(nb(good[0], good[1], code("pgl.course.a()"), *good[3:]))  # not hidden
    assert _exercise_problems(nb(good[0], good[2], good[1], *good[3:]))  # order
    assert _exercise_problems(nb(md("## Exercises\n\n1. Only one.\n"), *good[1:3]))
    assert _exercise_problems(nb(*good[1:]))  # no Exercises cell


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
