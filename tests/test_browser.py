"""The notebooks as a student sees them: JupyterLab in a real headless Chromium.

One JupyterLab server (``python -m jupyterlab`` of this interpreter, loopback only, autosave
off) serves a temporary copy of ``notebooks/``, with ``PRUNEGRAD_LITE_SMOKE=1`` for its kernels.
For each notebook the browser opens it, runs all cells, and then checks that

- every code cell ran, no output is an error, no widget output failed to render;
- every lesson widget (``pgl.course.build_*_widget``) shows its figure, and moving each of its
  controls (a key press on a slider, a click on a toggle button, a choice in a list) changes the
  image;
- at a laptop's page size (1366x768, outputs about 920 px wide), before and after each move,
  every widget's figure fits the output unshrunk and is not stretched beyond its own size, no
  widget scrolls sideways, and no label, button, readout or dropdown choice is cut; no output
  of the notebook scrolls sideways;
- the browser console has no error;
- neither the repository's notebooks nor the served copy changed on disk.

Three notebooks with widgets run by default (within the CI budget); the others are opt-in:
``python -m pytest -m browser_all tests/test_browser.py``. The tests are skipped when Chromium,
chromedriver or selenium are missing (``.ci/run`` installs them). Set
``PRUNEGRAD_LITE_BROWSER_SHOTS=<folder>`` to save a 1366x768 screenshot of every widget before
and after each move.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pytest

import jupyter_browser as jb

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
DEFAULT = ("01", "03", "06")  # in CI: three notebooks with widgets of every kind of control
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
RUN_TIMEOUT = 900  # s to run one notebook's cells in smoke mode (a few tens of s when idle)
UPDATE_TIMEOUT = 180  # s for one widget update (0.3-6 s when idle)
BUILDS = re.compile(r"\bpgl\.course\.build_\w+_widget\(")
# Console errors that are not the course's, each with its reason (none known so far).
CONSOLE_IGNORE: re.Pattern | None = None
# Outputs known to scroll sideways, per notebook, each with its reason: 05's sanity-check table
# (benchmarks.summary.sanity_tables, 7 columns in smoke mode, more with HOG) has headers such as
# "spearman_abs@top (constant left out)"; it is also docs/results/summary.md's table (rebuilt
# and checked from the result files), so narrowing it is a change there, not yet made.
WIDE_KNOWN = {"05_sanity_checks.ipynb": re.compile(r"output scrolls sideways .*: 'Init '")}

CHROMIUM, CHROMEDRIVER, MISSING = jb.find_browser()


def _param(name: str):
    marks = [] if name[:2] in DEFAULT else [pytest.mark.browser_all]
    return pytest.param(name, marks=marks, id=Path(name).stem)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.ipynb")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """(server, browser, copy folder, digests) for the module; everything is stopped after it."""
    if MISSING:
        pytest.skip(MISSING)
    work = tmp_path_factory.mktemp("browser")
    served = work / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, served)
    repo_digest = _digest(NOTEBOOK_DIR)
    server = jb.LabServer(served, work, env={"PRUNEGRAD_LITE_SMOKE": "1"})
    server.start()
    driver = None
    try:
        driver = jb.chrome(CHROMIUM, CHROMEDRIVER, work / "chromium-profile", work / "driver.log")
        yield server, driver, served, repo_digest
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    assert not server.leftovers, (
        f"processes outlived the server and were killed: {server.leftovers}"
    )
    assert _digest(NOTEBOOK_DIR) == repo_digest, "the repository's notebooks changed"


@pytest.fixture
def shots() -> Path | None:
    folder = os.environ.get("PRUNEGRAD_LITE_BROWSER_SHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shoot(driver, widget, folder: Path | None, name: str) -> None:
    if folder is not None:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", widget)
        time.sleep(0.3)
        driver.save_screenshot(str(folder / f"{name}.png"))


def _check(lab, name: str, shots: Path | None, update_timeout: float) -> list[str]:
    """Open, run and exercise one served notebook; return every problem seen."""
    server, driver, served, repo_digest = lab
    served_before = hashlib.sha256((served / name).read_bytes()).hexdigest()
    jb.console_problems(driver)  # drain what earlier pages left
    run = jb.open_and_run(driver, server, name, RUN_TIMEOUT)
    known = WIDE_KNOWN.get(name)
    wide = [p for p in jb.wide_outputs(driver) if known is None or not known.search(p)]
    problems = list(run.problems) + jb.widget_text_problems(driver) + wide

    expected = sum(len(BUILDS.findall(c["source"])) for c in run.cells if c["type"] == "code")
    widgets = jb.lesson_widgets(driver)
    if len(widgets) != expected:
        problems.append(f"{len(widgets)} lesson widgets in the page, {expected} built in the code")
    for w, widget in enumerate(widgets):
        state = jb.image_state(driver, widget)
        if not (state["src"] and state["natural"] > 0 and state["complete"]):
            problems.append(f"widget {w} shows no image: {state}")
            continue
        run.scales.append((w, state["width"], state["natural"]))
        problems += [f"widget {w}: {p}" for p in jb.layout_problems(driver, widget)]
        _shoot(driver, widget, shots, f"{Path(name).stem}_w{w}_0")
        found = jb.controls(widget)
        if not found:
            problems.append(f"widget {w}: the test finds none of its controls")
        for c, control in enumerate(found):
            label = jb.control_label(driver, control)
            before = jb.image_state(driver, widget)["src"]
            t0 = time.monotonic()
            try:
                done = jb.move(driver, control)
                if done is None:
                    run.updates.append((w, f"{label}: a single value, nothing to move", 0.0))
                    continue
                jb.wait_for(
                    lambda: jb.image_state(driver, widget)["src"] != before,  # noqa: B023
                    update_timeout,
                    "the image to change",
                    0.1,
                )
            except Exception as err:  # report every control, not only the first
                problems.append(f"widget {w} control {label!r}: {type(err).__name__}: {err}")
                continue
            run.updates.append((w, f"{label}: {done}", time.monotonic() - t0))
            problems += [
                f"widget {w} after {done}: {p}" for p in jb.layout_problems(driver, widget)
            ]
            _shoot(driver, widget, shots, f"{Path(name).stem}_w{w}_{c + 1}")
        problems += jb.widget_text_problems(driver)
    problems += jb.console_problems(driver, CONSOLE_IGNORE)

    print(
        f"\n{name}: opened in {run.seconds_open:.1f} s, ran in {run.seconds_run:.1f} s; "
        f"widget updates: "
        + "; ".join(f"w{w} {what} {s:.1f} s" for w, what, s in run.updates)
        + "; shown/natural width: "
        + ", ".join(f"w{w} {shown}/{nat} px" for w, shown, nat in run.scales)
    )
    jb.close_notebook(driver, name)
    _shut_kernel(server, name)
    if hashlib.sha256((served / name).read_bytes()).hexdigest() != served_before:
        problems.append("JupyterLab wrote into the served notebook (autosave must be off)")
    if _digest(NOTEBOOK_DIR) != repo_digest:
        problems.append("a notebook in the repository changed")
    return problems


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.browser
@pytest.mark.parametrize("name", [_param(n) for n in NOTEBOOKS])
def test_notebook_in_the_browser(name: str, shots, request: pytest.FixtureRequest) -> None:
    if name[:2] not in DEFAULT and "browser_all" not in (request.config.option.markexpr or ""):
        pytest.skip("opt-in: python -m pytest -m browser_all tests/test_browser.py")
    lab = request.getfixturevalue("lab")  # after the opt-in check: no server for a skip
    problems = _check(lab, name, shots, UPDATE_TIMEOUT)
    assert not problems, f"{name} in the browser:\n  " + "\n  ".join(problems)


PNG_1PX = (  # a valid 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PLANTED = [  # a notebook with one failure of each kind the check must catch
    "import base64\nimport ipywidgets as widgets\n"
    "slider = widgets.IntSlider(value=0, min=0, max=3, description='x', continuous_update=False)\n"
    "# laid out like pgl.course.LessonWidget, but its image never changes\n"
    "widgets.VBox([widgets.HTML('<b>stuck</b>'), widgets.HBox([slider]), widgets.HTML(),\n"
    f"              widgets.Image(value=base64.b64decode('{PNG_1PX}'), format='png')])",
    "import io\nimport matplotlib.pyplot as plt\n"
    "# laid out badly: a 1,500 px figure (wider than the output), a label that is cut\n"
    "fig = plt.figure(figsize=(15, 1), dpi=100)\n"
    "png = io.BytesIO()\nfig.savefig(png, format='png')\nplt.close(fig)\n"
    "choice = widgets.Dropdown(options=['only'], description='a description far too long')\n"
    "widgets.VBox([widgets.HTML('<b>wide</b>'), widgets.HBox([choice]), widgets.HTML(),\n"
    "              widgets.Image(value=png.getvalue(), format='png')])",
    "from IPython.display import Markdown  # a table wider than the output\n"
    "Markdown('|' + '|'.join(f'column {i}' for i in range(40)) + '|\\n|' + '---|' * 40)",
    "from IPython.display import Javascript, display\n"
    "display(Javascript(\"console.error('planted console error')\"))",
    "raise ValueError('planted error')",
    "print('never runs')",
]


@pytest.mark.slow
@pytest.mark.browser
def test_the_browser_check_catches_planted_failures(lab) -> None:
    """The check is not vacuous: a stuck widget, a widget laid out too wide or with a cut label,
    an output that scrolls sideways, a console error and an exception all fail it."""
    import nbformat

    served = lab[2]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in PLANTED]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, served / "zz_planted.ipynb")
    problems = "\n".join(_check(lab, "zz_planted.ipynb", None, update_timeout=10))
    assert "cell 4 raised ValueError: planted error" in problems, problems
    assert "cell 5 did not run" in problems, problems
    assert "widget 0 control 'x': TimeoutError" in problems, problems
    assert "2 lesson widgets in the page, 0 built in the code" in problems, problems
    assert "widget 0: its 1 px figure is stretched" in problems, problems
    assert re.search(r"widget 1: its figure is 1500 px wide, wider than the output", problems)
    assert "widget 1: the text 'a description far too long' is cut" in problems, problems
    assert "cell 2's output scrolls sideways" in problems, problems
    assert re.search(r"browser console: .*planted console error", problems), problems


def _shut_kernel(server: jb.LabServer, name: str) -> None:
    """Delete the notebook's session (and kernel), so the next notebook has the CPU."""
    for session in server.api_retry("/api/sessions"):
        if session.get("path", "").endswith(name):
            server.api_retry(f"/api/sessions/{session['id']}", method="DELETE")
